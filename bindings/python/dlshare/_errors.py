"""Exceptions: one class per C status, all under `dlshare.Error`, each also deriving from the
built-in exception Python users expect for that kind of problem. Every failure the Array API
standard assigns to `BufferError` in `__dlpack__` / `from_dlpack` (unsupported device or dtype,
read-only memory without a versioned capsule, a copy needed under copy=False, a stream for a CPU
tensor, a tensor its producer cannot export) is also a `BufferError`."""

from __future__ import annotations

from ._ffi import ffi, lib


class Error(Exception):
    """Base of every dlshare error. `.status` is the C status name, `.message` the library's
    explanation (what was wrong and what to do instead)."""

    status = "DLSHARE_ERR"

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NullArgumentError(Error, ValueError):
    status = "DLSHARE_ERR_NULL_ARGUMENT"


class InvalidHandleError(Error, ValueError):
    status = "DLSHARE_ERR_INVALID_HANDLE"


class InvalidArgumentError(Error, ValueError):
    status = "DLSHARE_ERR_INVALID_ARGUMENT"


class InvalidDLPackError(Error, BufferError):
    status = "DLSHARE_ERR_INVALID_DLPACK"


class UnsupportedVersionError(Error, BufferError):
    status = "DLSHARE_ERR_UNSUPPORTED_VERSION"


class UnsupportedDtypeError(Error, TypeError, BufferError):
    status = "DLSHARE_ERR_UNSUPPORTED_DTYPE"


class UnsupportedDeviceError(Error, BufferError):
    status = "DLSHARE_ERR_UNSUPPORTED_DEVICE"


class CannotShareError(Error, ValueError, BufferError):
    """`from_numpy` (or `copy=False`) could not share. `.reason` names the obstacle:
    read_only, negative_stride, stride_not_item_multiple, byte_order, misaligned, or a
    producer's rule: lazy_conjugate, lazy_negative, requires_grad, producer_copy."""

    status = "DLSHARE_ERR_CANNOT_SHARE"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ReadOnlyError(Error, BufferError):
    status = "DLSHARE_ERR_READ_ONLY"


class SizeOverflowError(Error, OverflowError):
    status = "DLSHARE_ERR_OVERFLOW"


class OutOfMemoryError(Error, MemoryError):
    status = "DLSHARE_ERR_OUT_OF_MEMORY"


class DeviceUnavailableError(Error, RuntimeError, BufferError):
    status = "DLSHARE_ERR_DEVICE_UNAVAILABLE"


class CudaError(Error, RuntimeError):
    status = "DLSHARE_ERR_CUDA"


class InternalError(Error, RuntimeError):
    status = "DLSHARE_ERR_PANIC"


class UnexportableError(Error, BufferError):
    """Raised by the Python binding before any library call: the producer's object has no
    memory that DLPack can describe (a sparse, mkldnn, nested, quantized or meta torch tensor).
    The message says what to convert it with."""

    status = "DLSHARE_ERR_UNEXPORTABLE"


_BY_STATUS = {
    lib.DLSHARE_ERR_NULL_ARGUMENT: NullArgumentError,
    lib.DLSHARE_ERR_INVALID_HANDLE: InvalidHandleError,
    lib.DLSHARE_ERR_INVALID_ARGUMENT: InvalidArgumentError,
    lib.DLSHARE_ERR_INVALID_DLPACK: InvalidDLPackError,
    lib.DLSHARE_ERR_UNSUPPORTED_VERSION: UnsupportedVersionError,
    lib.DLSHARE_ERR_UNSUPPORTED_DTYPE: UnsupportedDtypeError,
    lib.DLSHARE_ERR_UNSUPPORTED_DEVICE: UnsupportedDeviceError,
    lib.DLSHARE_ERR_CANNOT_SHARE: CannotShareError,
    lib.DLSHARE_ERR_READ_ONLY: ReadOnlyError,
    lib.DLSHARE_ERR_OVERFLOW: SizeOverflowError,
    lib.DLSHARE_ERR_OUT_OF_MEMORY: OutOfMemoryError,
    lib.DLSHARE_ERR_DEVICE_UNAVAILABLE: DeviceUnavailableError,
    lib.DLSHARE_ERR_CUDA: CudaError,
    lib.DLSHARE_ERR_PANIC: InternalError,
}


def raise_status(status: int, decision=None) -> None:
    """Raises the exception for a failed call (reads this thread's last error message)."""
    message = ffi.string(lib.dlshare_last_error_message()).decode("utf-8", "replace")
    cls = _BY_STATUS.get(status, Error)
    if cls is CannotShareError:
        reason = None
        if decision is not None:
            reason = ffi.string(lib.dlshare_reason_name(decision.reason)).decode()
        raise CannotShareError(message, reason)
    raise cls(message)


def check(status: int, decision=None) -> None:
    if status != 0:
        raise_status(status, decision)
