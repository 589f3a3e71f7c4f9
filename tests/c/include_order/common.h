/* Shared by the include-order translation units, included AFTER both dlshare.h and
   ATen/dlpack.h (in either order). It uses DLPack types and macros (whichever header declared
   them) together with dlshare's API, and compiles as C11 and as C++17. */
#ifndef DLSHARE_INCLUDE_ORDER_COMMON_H
#define DLSHARE_INCLUDE_ORDER_COMMON_H

#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#define STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

STATIC_ASSERT(DLPACK_MAJOR_VERSION == 1, "DLPack major version 1");
STATIC_ASSERT(sizeof(DLTensor) == 48, "DLTensor layout");
STATIC_ASSERT(sizeof(DLManagedTensor) == 64, "DLManagedTensor layout");
STATIC_ASSERT(sizeof(DLManagedTensorVersioned) == 80, "DLManagedTensorVersioned layout");
STATIC_ASSERT(sizeof(DLPackExchangeAPI) > sizeof(DLPackExchangeAPIHeader), "DLPack 1.3 API");

#define FAIL_UNLESS(cond)                                                          \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,      \
              __LINE__, #cond, dlshare_last_error_message());                      \
      return 1;                                                                    \
    }                                                                              \
  } while (0)

static int deleted;
static void on_delete(DLManagedTensorVersioned *self) {
  (void)self;
  deleted++;
}

/* Imports a DLPack tensor built with the DLPack declarations, exports it again, and checks
   that the memory is shared throughout. Returns 0 on success. */
static int exercise_both_headers(const char *label) {
  float values[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  int64_t shape[1] = {4};
  DLManagedTensorVersioned managed;
  DLManagedTensorVersioned *exported = NULL;
  dlshare_options options = dlshare_options_init(DLSHARE_MODE_SHARE);
  dlshare_decision decision;
  dlshare_tensor *tensor = NULL;
  DLDeviceType cpu = kDLCPU;

  memset(&managed, 0, sizeof managed);
  managed.version.major = DLPACK_MAJOR_VERSION;
  managed.version.minor = DLPACK_MINOR_VERSION;
  managed.deleter = on_delete;
  managed.dl_tensor.data = values;
  managed.dl_tensor.device.device_type = cpu;
  managed.dl_tensor.ndim = 1;
  managed.dl_tensor.dtype.code = (uint8_t)kDLFloat;
  managed.dl_tensor.dtype.bits = 32;
  managed.dl_tensor.dtype.lanes = 1;
  managed.dl_tensor.shape = shape;
  deleted = 0;

  FAIL_UNLESS(dlshare_tensor_from_dlpack(&managed, &options, &tensor, &decision) == DLSHARE_OK);
  FAIL_UNLESS(decision.shared && decision.reason == DLSHARE_REASON_NONE);
  FAIL_UNLESS(dlshare_tensor_to_dlpack(tensor, &exported) == DLSHARE_OK);
  FAIL_UNLESS(exported->dl_tensor.data == (void *)values);
  FAIL_UNLESS((exported->flags & DLPACK_FLAG_BITMASK_READ_ONLY) == 0);
  FAIL_UNLESS(dlshare_tensor_release(tensor) == DLSHARE_OK);
  FAIL_UNLESS(deleted == 0);
  exported->deleter(exported);
  FAIL_UNLESS(deleted == 1);
  printf("%s: both headers usable, memory shared, deleter ran once\n", label);
  return 0;
}

#endif /* DLSHARE_INCLUDE_ORDER_COMMON_H */
