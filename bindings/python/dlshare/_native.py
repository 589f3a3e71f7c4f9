"""The library's CPython fast path (src/ffi/pyext.rs): native `from_numpy`, `as_tensor`,
`Tensor.__dlpack__`/`__dlpack_device__` and tensor deallocation, for the per-call hot paths where
a cffi call and the Python around it would cost several times what PyTorch's own functions do.

The library looks CPython's C API up in the running process, so this works only on CPython 3.11
or newer with the classic object header (16 bytes, not the free-threaded build); elsewhere, or with
DLSHARE_PURE_PYTHON=1 in the environment, the package runs on cffi alone. Either way every
decision is the library's and every fallback is the same Python code."""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
from typing import Any

from ._ffi import LIBRARY_PATH


def usable() -> bool:
    return (
        not os.environ.get("DLSHARE_PURE_PYTHON")
        and sys.implementation.name == "cpython"
        and sys.version_info >= (3, 11)  # PyObject_Vectorcall is an exported function from 3.11
        and object.__basicsize__ == 16
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
    )


def load() -> dict[str, Any] | None:
    """{"TensorBase", "from_numpy", "as_tensor", "_wrap", "_configure"}, or None when the fast
    path cannot be used here."""
    if not usable():
        return None
    try:
        # The same library cffi opened (dlopen of one path gives one copy, one handle table).
        build = ctypes.PyDLL(LIBRARY_PATH).dlshare_python_module
    except (OSError, AttributeError):
        return None  # an older library without the fast path (DLSHARE_LIBRARY override)
    build.argtypes = []
    build.restype = ctypes.py_object
    try:
        return build()
    except (ValueError, RuntimeError, SystemError):
        return None
