"""CUDA devices, as `torch.cuda` names things: `is_available()`, `device_count()`,
`synchronize()`, plus dlshare's own stream per device and the device memory dlshare holds.

Tensors go to a device through the ordinary functions: `dlshare.as_tensor(x, device="cuda:0")`,
`dlshare.tensor(...)`, `Tensor.to("cuda:0")`, `dlshare.empty(shape, dtype, "cuda:0")`, and
`"cuda_host:0"` for pinned host memory. Without a CUDA driver or GPU these raise
`dlshare.DeviceUnavailableError` saying why; `unavailable_reason()` gives the same text."""

from __future__ import annotations

from typing import Any

from ._core import _device_name, device_key, stream_handle
from ._errors import DeviceUnavailableError, check
from ._ffi import ffi, lib

__all__ = [
    "device_count",
    "is_available",
    "memory_allocated",
    "stream",
    "stream_wait",
    "synchronize",
    "unavailable_reason",
]


def is_available() -> bool:
    """Whether a CUDA driver was found and reports at least one device."""
    return bool(lib.dlshare_cuda_available())


def unavailable_reason() -> str | None:
    """Why CUDA cannot be used (None when it can)."""
    out = ffi.new("int32_t *")
    if lib.dlshare_cuda_device_count(out) == 0:
        return None
    message = ffi.string(lib.dlshare_last_error_message()).decode("utf-8", "replace")
    return message.removeprefix("no CUDA devices: ")


def device_count() -> int:
    """Number of CUDA devices (0 when CUDA cannot be used)."""
    out = ffi.new("int32_t *")
    if lib.dlshare_cuda_device_count(out) != 0:
        return 0
    return int(out[0])


def _device_id(device: Any) -> int:
    if isinstance(device, int):
        return device
    device_type, device_id = device_key(device)
    if device_type != lib.kDLCUDA:
        name = _device_name((device_type, device_id))
        raise DeviceUnavailableError(f"{name} is not a CUDA device")
    return device_id


def synchronize(device: Any = 0) -> None:
    """Wait for all work on the device (as torch.cuda.synchronize), then release the sources
    that copies issued on a caller's stream kept alive."""
    check(lib.dlshare_cuda_synchronize(_device_id(device)))


def stream(device: Any = 0) -> int:
    """dlshare's own stream on the device (a cudaStream_t as an int; never destroy it):
    `torch.cuda.ExternalStream(dlshare.cuda.stream())` runs work after dlshare's."""
    out = ffi.new("void **")
    check(lib.dlshare_cuda_stream(_device_id(device), out))
    return int(ffi.cast("uintptr_t", out[0]))


def stream_wait(consumer: Any, device: Any = 0) -> None:
    """Make `consumer` (1, 2, a cudaStream_t, a torch/CuPy stream; -1 does nothing) wait for the
    work dlshare has queued on the device, without blocking the host."""
    check(lib.dlshare_cuda_stream_wait(_device_id(device), stream_handle(consumer)))


def memory_allocated(device: Any = 0) -> int:
    """Bytes of device memory that dlshare's own allocations hold on the device."""
    out = ffi.new("uint64_t *")
    check(lib.dlshare_cuda_memory_allocated(_device_id(device), out))
    return int(out[0])
