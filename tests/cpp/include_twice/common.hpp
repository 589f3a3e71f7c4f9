// Included by both translation units AFTER dlshare.h, dlshare.hpp and ATen/dlpack.h (each
// twice, in one order or the other). Uses DLPack types and macros, whichever header declared
// them, together with the C++ wrapper.
#ifndef DLSHARE_INCLUDE_TWICE_COMMON_HPP
#define DLSHARE_INCLUDE_TWICE_COMMON_HPP

#include <cstdio>
#include <cstring>

static_assert(DLPACK_MAJOR_VERSION == 1, "DLPack major version 1");
static_assert(sizeof(DLTensor) == 48, "DLTensor layout");
static_assert(sizeof(DLManagedTensor) == 64, "DLManagedTensor layout");
static_assert(sizeof(DLManagedTensorVersioned) == 80, "DLManagedTensorVersioned layout");
static_assert(sizeof(DLPackExchangeAPI) > sizeof(DLPackExchangeAPIHeader), "DLPack 1.3 API");

namespace {

int deleted = 0;

// Imports a managed tensor built with the DLPack declarations through dlshare.hpp, exports it
// again, and checks that the memory is shared throughout. Returns 0 on success.
int exercise_both_headers(const char *label) {
  float values[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  int64_t shape[1] = {4};
  DLManagedTensorVersioned managed;
  std::memset(&managed, 0, sizeof managed);
  managed.version.major = DLPACK_MAJOR_VERSION;
  managed.version.minor = DLPACK_MINOR_VERSION;
  managed.deleter = [](DLManagedTensorVersioned *) { deleted++; };
  managed.dl_tensor.data = values;
  managed.dl_tensor.device.device_type = kDLCPU;
  managed.dl_tensor.ndim = 1;
  managed.dl_tensor.dtype = dlshare::dtype_of<float>();
  managed.dl_tensor.shape = shape;
  deleted = 0;
  {
    dlshare::Decision decision;
    dlshare::Tensor tensor = dlshare::from_dlpack(&managed, dlshare::Mode::share, &decision);
    if (!decision.shared() || tensor.data<float>() != values) return 1;
    dlshare::ManagedTensorVersioned exported = tensor.to_dlpack();
    if (exported->dl_tensor.data != values) return 1;
    if ((exported->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0) return 1;
    tensor.reset();
    if (deleted != 0) return 1;
  }
  if (deleted != 1) return 1;
  std::printf("%s: both headers usable, memory shared, deleter ran once\n", label);
  return 0;
}

}  // namespace

#endif  // DLSHARE_INCLUDE_TWICE_COMMON_HPP
