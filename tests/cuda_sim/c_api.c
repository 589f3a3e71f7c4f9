/* The CUDA part of dlshare's C API from C, on the simulated driver (tests/cuda_sim/run builds
 * and runs it against include/dlshare.h and the just-built library).
 *   c_api                  a transposed float32 matrix host -> cuda:0 -> cpu and pinned, a
 *                          cast on the device, the stream handoff; device memory back to start
 *   c_api --read-device    test-only and deliberately wrong: reads device memory on the host.
 *                          Under the simulator it must die of SIGSEGV (run checks that). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlshare.h"

static int failures = 0, checks = 0;
#define CHECK(cond)                                                                 \
  do {                                                                              \
    checks++;                                                                       \
    if (!(cond)) {                                                                  \
      failures++;                                                                   \
      fprintf(stderr, "c_api: FAILED %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, \
              dlshare_last_error_message());                                        \
    }                                                                               \
  } while (0)

static const DLDataType F32 = {kDLFloat, 32, 1}, F64 = {kDLFloat, 64, 1};

static dlshare_tensor *to(const dlshare_tensor *t, DLDevice device, const DLDataType *dtype) {
  dlshare_options o = dlshare_options_init(DLSHARE_MODE_COPY);
  o.has_device = true;
  o.device = device;
  if (dtype) {
    o.has_dtype = true;
    o.dtype = *dtype;
  }
  dlshare_tensor *out = NULL;
  CHECK(dlshare_tensor_convert(t, &o, &out, NULL) == DLSHARE_OK);
  return out;
}

static const void *data(const dlshare_tensor *t) {
  void *p = NULL;
  CHECK(dlshare_tensor_data(t, &p) == DLSHARE_OK);
  return p;
}

int main(int argc, char **argv) {
  const DLDevice cpu = {kDLCPU, 0}, gpu = {kDLCUDA, 0}, pinned = {kDLCUDAHost, 0};
  if (!dlshare_cuda_available()) {
    printf("c_api: no CUDA device: %s\n", dlshare_last_error_message());
    return 2;
  }
  if (argc > 1 && strcmp(argv[1], "--read-device") == 0) {
    int64_t n = 256;
    dlshare_tensor *z = NULL;
    CHECK(dlshare_tensor_zeros(F32, 1, &n, gpu, &z) == DLSHARE_OK);
    const volatile float *p = data(z);
    printf("c_api: reading device address %p on the host\n", (const void *)p);
    fflush(stdout);
    float x = p[0]; /* must crash under the simulator */
    printf("c_api: read %g from device memory: the host read was not caught\n", x);
    return 1;
  }
  uint64_t start = 0;
  CHECK(dlshare_cuda_memory_allocated(0, &start) == DLSHARE_OK);

  /* a 3 x 4 matrix seen transposed (4 x 3, F order strides) */
  float host[12];
  for (int i = 0; i < 12; i++) host[i] = (float)i * 1.5f;
  int64_t shape[2] = {4, 3}, strides[2] = {4, 16};
  dlshare_view v = {host, F32, 2, shape, strides, cpu, 0, NULL, NULL};
  dlshare_options o = dlshare_options_init(DLSHARE_MODE_SHARE_OR_COPY);
  o.has_device = true;
  o.device = gpu;
  dlshare_tensor *d = NULL;
  dlshare_decision why;
  CHECK(dlshare_tensor_from_view(&v, &o, &d, &why) == DLSHARE_OK);
  CHECK(!why.shared && why.reason == DLSHARE_REASON_DEVICE_CHANGE);
  uint64_t held = 0;
  CHECK(dlshare_cuda_memory_allocated(0, &held) == DLSHARE_OK && held == start + 48);

  dlshare_tensor *back = to(d, cpu, NULL), *in_pinned = to(d, pinned, NULL);
  dlshare_tensor *as_f64 = to(d, gpu, &F64), *f64_back = to(as_f64, cpu, NULL);
  const float *b = data(back), *p = data(in_pinned);
  const double *b64 = data(f64_back);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) {
      float want = host[j * 4 + i];
      CHECK(b[i * 3 + j] == want && p[i * 3 + j] == want && b64[i * 3 + j] == (double)want);
    }
  /* the handoff to the legacy default stream, and its refusals */
  CHECK(dlshare_cuda_stream_wait(0, 1) == DLSHARE_OK);
  CHECK(dlshare_cuda_stream_wait(0, 0) == DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK(dlshare_cuda_synchronize(0) == DLSHARE_OK);
  CHECK(dlshare_cuda_synchronize(99) == DLSHARE_ERR_DEVICE_UNAVAILABLE);

  dlshare_tensor *all[] = {d, back, in_pinned, as_f64, f64_back};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    CHECK(dlshare_tensor_release(all[i]) == DLSHARE_OK);
  uint64_t end = 1;
  CHECK(dlshare_cuda_memory_allocated(0, &end) == DLSHARE_OK && end == start);
  CHECK(dlshare_live_tensor_count() == 0);

  /* the simulator's own account: no device memory left */
  void *lib = dlopen("libcuda.so", RTLD_NOW | RTLD_NOLOAD);
  int64_t (*counter)(const char *) = lib ? (int64_t(*)(const char *))dlsym(lib, "dlsim_counter")
                                         : NULL;
  if (counter) CHECK(counter("device_bytes") == 0 && counter("device_allocs") == 0);

  printf("c_api: %d checks, %d failed%s\n", checks, failures,
         counter ? " (simulated driver)" : "");
  return failures ? 1 : 0;
}
