"""dlshare: share tensor memory between NumPy, PyTorch, JAX and pandas without copying when that
is safe; copy it correctly when it is not, and say why."""

from . import cuda
from ._core import (
    Explanation,
    Tensor,
    as_tensor,
    empty,
    explain,
    from_dlpack,
    from_numpy,
    live_tensor_count,
    shares_memory,
    tensor,
    zeros,
)
from ._errors import (
    CannotShareError,
    CudaError,
    DeviceUnavailableError,
    Error,
    InternalError,
    InvalidArgumentError,
    InvalidDLPackError,
    InvalidHandleError,
    NullArgumentError,
    OutOfMemoryError,
    ReadOnlyError,
    SizeOverflowError,
    UnsupportedDeviceError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
)
from ._ffi import LIBRARY_PATH, ffi, lib
from ._pandas import from_dataframe, from_series, sliding_windows, to_dataframe

__version__ = ffi.string(lib.dlshare_version()).decode()

__all__ = [
    "CannotShareError",
    "CudaError",
    "DeviceUnavailableError",
    "Error",
    "Explanation",
    "InternalError",
    "InvalidArgumentError",
    "InvalidDLPackError",
    "InvalidHandleError",
    "LIBRARY_PATH",
    "NullArgumentError",
    "OutOfMemoryError",
    "ReadOnlyError",
    "SizeOverflowError",
    "Tensor",
    "UnsupportedDeviceError",
    "UnsupportedDtypeError",
    "UnsupportedVersionError",
    "as_tensor",
    "cuda",
    "empty",
    "explain",
    "from_dataframe",
    "from_dlpack",
    "from_numpy",
    "from_series",
    "live_tensor_count",
    "shares_memory",
    "sliding_windows",
    "tensor",
    "to_dataframe",
    "zeros",
]
