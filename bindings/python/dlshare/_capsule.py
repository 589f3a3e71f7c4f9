"""DLPack capsules for a pure-Python (cffi ABI mode) package: make capsules for `__dlpack__`,
read and consume the ones producers give.

Capsules are created with CPython's `PyCapsule_New` (through ctypes) and destroyed by the
library's `dlshare_pycapsule_destructor`, which frees an unconsumed tensor without calling back
into Python. On CPython the fields of a capsule (pointer, name) are read and renamed directly
through its object layout, which is verified once at import; elsewhere the C-API functions are
used."""

from __future__ import annotations

import ctypes

from ._ffi import ffi, lib

# Capsule names live for the whole process (PyCapsule keeps the pointer, not a copy).
VERSIONED = b"dltensor_versioned"
LEGACY = b"dltensor"
USED_VERSIONED = b"used_dltensor_versioned"
USED_LEGACY = b"used_dltensor"

_api = ctypes.pythonapi
_is_valid = _api.PyCapsule_IsValid
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_get_pointer = _api.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name = _api.PyCapsule_SetName
_set_name.restype = ctypes.c_int
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_new_raw = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
    ("PyCapsule_New", _api)
)


# -- destructor --------------------------------------------------------------------------------

# Fallback when the library cannot see CPython's capsule functions (e.g. an embedded
# interpreter loaded privately). It receives the dying capsule as a raw pointer: taking a new
# reference to an object being deallocated would resurrect it.
_RawIsValid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)
_RawGetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
_raw_is_valid = _RawIsValid(("PyCapsule_IsValid", _api))
_raw_get_pointer = _RawGetPointer(("PyCapsule_GetPointer", _api))


def _destroy(capsule: int) -> None:
    for name, ctype in ((VERSIONED, "DLManagedTensorVersioned *"), (LEGACY, "DLManagedTensor *")):
        if _raw_is_valid(capsule, name):
            managed = ffi.cast(ctype, _raw_get_pointer(capsule, name))
            if managed.deleter != ffi.NULL:
                managed.deleter(managed)
            return


_PY_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_destroy)
if lib.dlshare_pycapsule_destructor_available():
    _DESTRUCTOR_ADDRESS = int(ffi.cast("uintptr_t", lib.dlshare_pycapsule_destructor))
else:
    _DESTRUCTOR_ADDRESS = ctypes.cast(_PY_DESTRUCTOR, ctypes.c_void_p).value


# -- field access ------------------------------------------------------------------------------

ffi.cdef(
    """
    typedef struct { intptr_t refcnt; void *type; DLManagedTensorVersioned *pointer;
                     uintptr_t name; } _dlshare_capsule_v;
    typedef struct { intptr_t refcnt; void *type; DLManagedTensor *pointer;
                     uintptr_t name; } _dlshare_capsule_l;
    """
)
_NAMES = {n: ffi.new("char[]", n) for n in (VERSIONED, LEGACY, USED_VERSIONED, USED_LEGACY)}
_ADDRESS = {n: int(ffi.cast("uintptr_t", p)) for n, p in _NAMES.items()}
# name address -> True (versioned) / False (legacy) for unconsumed DLPack names seen so far;
# producers name capsules with static strings, so an address stands for its text.
_known_names: dict[int, bool] = {_ADDRESS[VERSIONED]: True, _ADDRESS[LEGACY]: False}


_PROBE = ffi.new("char[]", b"dlshare_layout_probe")
_PROBE_ADDRESS = int(ffi.cast("uintptr_t", _PROBE))


def _verify_layout() -> bool:
    try:
        probe = _new_raw(0x1234560, _PROBE_ADDRESS, None)
        fields = ffi.cast("_dlshare_capsule_v *", id(probe))
        return int(ffi.cast("uintptr_t", fields.pointer)) == 0x1234560 and ffi.string(
            ffi.cast("char *", fields.name)
        ) == b"dlshare_layout_probe"
    except Exception:  # any surprise: use the C API
        return False


FAST = _verify_layout()


def make(managed, versioned: bool):
    """A capsule owning `managed` (a cffi pointer); its destructor frees it unless consumed."""
    return _new_raw(
        int(ffi.cast("uintptr_t", managed)),
        _ADDRESS[VERSIONED if versioned else LEGACY],
        _DESTRUCTOR_ADDRESS,
    )


def open(capsule):
    """(managed pointer, versioned?) of an unconsumed capsule. Raises BufferError for one that
    was consumed already and TypeError for anything that is not a DLPack capsule."""
    if type(capsule).__name__ != "PyCapsule":
        raise TypeError(f"expected a DLPack capsule, got {type(capsule).__name__}")
    if FAST:
        fields = ffi.cast("_dlshare_capsule_v *", id(capsule))
        versioned = _known_names.get(fields.name)
        if versioned is None:
            text = ffi.string(ffi.cast("char *", fields.name))
            if text in (VERSIONED, LEGACY):
                versioned = _known_names[fields.name] = text == VERSIONED
        if versioned is True:
            return fields.pointer, True
        if versioned is False:
            return ffi.cast("_dlshare_capsule_l *", id(capsule)).pointer, False
    elif _is_valid(capsule, VERSIONED):
        return ffi.cast("DLManagedTensorVersioned *", _get_pointer(capsule, VERSIONED)), True
    elif _is_valid(capsule, LEGACY):
        return ffi.cast("DLManagedTensor *", _get_pointer(capsule, LEGACY)), False
    if _is_valid(capsule, USED_VERSIONED) or _is_valid(capsule, USED_LEGACY):
        raise BufferError("this DLPack capsule was consumed already; a capsule is used once")
    raise TypeError("the capsule is not a DLPack capsule (name is not 'dltensor[_versioned]')")


def mark_used(capsule, versioned: bool) -> None:
    """Renames a consumed capsule so that its destructor no longer frees the tensor."""
    used = USED_VERSIONED if versioned else USED_LEGACY
    if FAST:
        ffi.cast("_dlshare_capsule_v *", id(capsule)).name = _ADDRESS[used]
    else:
        _set_name(capsule, used)


def is_exchange_api(capsule) -> bool:
    """Whether `capsule` is a DLPack C exchange API table ("dlpack_exchange_api")."""
    return type(capsule).__name__ == "PyCapsule" and bool(_is_valid(capsule, b"dlpack_exchange_api"))


def pointer(capsule, name: bytes) -> int:
    """The pointer a capsule holds under `name` (checked by CPython)."""
    return _get_pointer(capsule, name)
