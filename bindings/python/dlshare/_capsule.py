"""DLPack capsules through the CPython C API (via ctypes), so the package stays pure Python
(cffi ABI mode): make capsules for `__dlpack__`, read and consume the ones producers give."""

from __future__ import annotations

import ctypes

from ._ffi import ffi

# Capsule names live for the whole process (PyCapsule keeps the pointer, not a copy).
VERSIONED = b"dltensor_versioned"
LEGACY = b"dltensor"
USED_VERSIONED = b"used_dltensor_versioned"
USED_LEGACY = b"used_dltensor"

_api = ctypes.pythonapi
_new = _api.PyCapsule_New
_new.restype = ctypes.py_object
_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_is_valid = _api.PyCapsule_IsValid
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_get_pointer = _api.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name = _api.PyCapsule_SetName
_set_name.restype = ctypes.c_int
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]

# The destructor receives the dying capsule as a raw pointer: taking a new reference to an
# object being deallocated would resurrect it, so these variants take `void *`.
_RawIsValid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)
_RawGetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
_raw_is_valid = _RawIsValid(("PyCapsule_IsValid", _api))
_raw_get_pointer = _RawGetPointer(("PyCapsule_GetPointer", _api))


def _destroy(capsule: int) -> None:
    # A capsule that nobody consumed still owns its managed tensor: free it. A consumed one was
    # renamed "used_..." by its consumer, which now owns the tensor.
    for name, ctype in ((VERSIONED, "DLManagedTensorVersioned *"), (LEGACY, "DLManagedTensor *")):
        if _raw_is_valid(capsule, name):
            managed = ffi.cast(ctype, _raw_get_pointer(capsule, name))
            if managed.deleter != ffi.NULL:
                managed.deleter(managed)
            return


_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_destroy)


def make(managed, versioned: bool):
    """A capsule owning `managed` (a cffi pointer); its destructor frees it unless consumed."""
    name = VERSIONED if versioned else LEGACY
    address = int(ffi.cast("uintptr_t", managed))
    return _new(address, name, ctypes.cast(_DESTRUCTOR, ctypes.c_void_p))


def open(capsule):
    """(managed pointer, versioned?) of an unconsumed capsule. Raises BufferError for one that
    was consumed already and TypeError for anything that is not a DLPack capsule."""
    if type(capsule).__name__ != "PyCapsule":
        raise TypeError(f"expected a DLPack capsule, got {type(capsule).__name__}")
    if _is_valid(capsule, VERSIONED):
        return ffi.cast("DLManagedTensorVersioned *", _get_pointer(capsule, VERSIONED)), True
    if _is_valid(capsule, LEGACY):
        return ffi.cast("DLManagedTensor *", _get_pointer(capsule, LEGACY)), False
    if _is_valid(capsule, USED_VERSIONED) or _is_valid(capsule, USED_LEGACY):
        raise BufferError("this DLPack capsule was consumed already; a capsule is used once")
    raise TypeError("the capsule is not a DLPack capsule (name is not 'dltensor[_versioned]')")


def mark_used(capsule, versioned: bool) -> None:
    """Renames a consumed capsule so that its destructor no longer frees the tensor."""
    _set_name(capsule, USED_VERSIONED if versioned else USED_LEGACY)
