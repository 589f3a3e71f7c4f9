/* The library's version string matches the header's macros and, when the build passes
   -DEXPECTED_VERSION="x.y.z", the version of the package it was found as (CMake package or
   pkg-config module). Also a minimal link-and-run check of a consumer. */
#include "check.h"

#define STR_(x) #x
#define STR(x) STR_(x)

int main(void) {
  const char *header_version =
      STR(DLSHARE_VERSION_MAJOR) "." STR(DLSHARE_VERSION_MINOR) "." STR(DLSHARE_VERSION_PATCH);
  const int64_t shape[1] = {3};
  DLDataType i32;
  DLDevice cpu;
  dlshare_tensor *t = NULL;
  const size_t start = dlshare_live_tensor_count();

  printf("library %s, header %s", dlshare_version(), header_version);
#ifdef EXPECTED_VERSION
  printf(", package %s", EXPECTED_VERSION);
  CHECK(strcmp(dlshare_version(), EXPECTED_VERSION) == 0);
#endif
  printf("\n");
  CHECK(strcmp(dlshare_version(), header_version) == 0);

  i32.code = kDLInt;
  i32.bits = 32;
  i32.lanes = 1;
  cpu.device_type = kDLCPU;
  cpu.device_id = 0;
  CHECK_OK(dlshare_tensor_zeros(i32, 1, shape, cpu, &t));
  CHECK(dlshare_live_tensor_count() == start + 1);
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(dlshare_live_tensor_count() == start);
  return 0;
}
