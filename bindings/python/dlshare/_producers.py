"""Producer rules: what a foreign array type allows a consumer to do with its memory, applied on
every import path (native fast path, cffi, DLPack C exchange API, capsules, array protocols).

- PyTorch: a tensor whose memory does not hold the values the user sees (conjugate or negative
  bit), that takes part in autograd (`requires_grad`), or that has no strided memory at all
  (sparse, mkldnn, nested, quantized, meta) is never shared. SHARE refuses with a reason code,
  SHARE_OR_COPY / COPY import `t.resolve_conj().resolve_neg().detach()` (a copy), and a tensor
  without strided memory is refused in every mode with what to call instead. A subclass that
  overrides `__dlpack__` is a producer of its own: its `__dlpack__` is used, never torch's C
  exchange API.
- JAX arrays are immutable: they are imported read-only.
- `__array__` / `__array_interface__` producers: when the producer built new memory for the call
  (NumPy 2's `__array__(copy=False)` raises, or nothing but the returned array owns its memory),
  the result is reported as a copy (`producer_copy`), never as shared.

The exchange API tables are checked once per type (malformed ones raise InvalidDLPackError /
UnsupportedVersionError naming the type)."""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import numpy as np

from . import _capsule
from ._errors import CannotShareError, InvalidDLPackError, UnexportableError, UnsupportedVersionError
from ._ffi import ffi, lib

SHARE, SHARE_OR_COPY, COPY = (
    lib.DLSHARE_MODE_SHARE,
    lib.DLSHARE_MODE_SHARE_OR_COPY,
    lib.DLSHARE_MODE_COPY,
)
LAZY_CONJUGATE = lib.DLSHARE_REASON_LAZY_CONJUGATE
LAZY_NEGATIVE = lib.DLSHARE_REASON_LAZY_NEGATIVE
REQUIRES_GRAD = lib.DLSHARE_REASON_REQUIRES_GRAD
PRODUCER_COPY = lib.DLSHARE_REASON_PRODUCER_COPY

# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_tensor_type() -> type | None:
    """torch.Tensor when torch is imported (an object cannot be a torch tensor otherwise)."""
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


_own_dlpack: dict[type, bool] = {}


def overrides_dlpack(cls: type) -> bool:
    """Whether a torch.Tensor subclass defines its own `__dlpack__` (it is then a producer of its
    own: its export is used, not torch's)."""
    hit = _own_dlpack.get(cls)
    if hit is None:
        base = torch_tensor_type()
        hit = base is not None and cls is not base and cls.__dlpack__ is not base.__dlpack__
        _own_dlpack[cls] = hit
    return hit


_NO_STRIDED_MEMORY = {
    "torch.sparse_coo": "sparse COO",
    "torch.sparse_csr": "sparse CSR",
    "torch.sparse_csc": "sparse CSC",
    "torch.sparse_bsr": "sparse BSR",
    "torch.sparse_bsc": "sparse BSC",
    "torch._mkldnn": "mkldnn",
    "torch.jagged": "nested (jagged)",
}


def torch_resolve(t: Any, mode: int) -> tuple[Any, int, int]:
    """(tensor to import, reason to report, mode to import it with) for a torch tensor, after
    PyTorch's export rules; raises CannotShareError (SHARE) or UnexportableError."""
    layout = str(t.layout)
    if t.is_nested:
        raise UnexportableError(
            "a nested torch tensor has no single strided memory; convert it with "
            ".to_padded_tensor(0) or export its components (.unbind())"
        )
    if layout != "torch.strided":
        what = _NO_STRIDED_MEMORY.get(layout, layout)
        raise UnexportableError(
            f"a {what} torch tensor has no strided memory to share or copy; convert it with "
            ".to_dense() first"
        )
    if t.is_quantized:
        raise UnexportableError(
            f"a quantized torch tensor ({t.dtype}) has no DLPack dtype; use .dequantize() for "
            "its values or .int_repr() for the stored integers"
        )
    if t.is_meta:
        raise UnexportableError("a meta torch tensor has no data; materialise it first")
    conj = t.is_conj()
    neg = t.is_neg()
    grad = t.requires_grad
    if not (conj or neg or grad):
        return t, 0, mode
    reason = LAZY_CONJUGATE if conj else LAZY_NEGATIVE if neg else REQUIRES_GRAD
    if mode == SHARE:
        if conj:
            todo = "call .resolve_conj() (a copy) first"
            why = "it is a lazy conjugate view (its memory holds the unconjugated values)"
        elif neg:
            todo = "call .resolve_neg() (a copy) first"
            why = "it is a lazy negation (its memory holds the values with the other sign)"
        else:
            todo = "call .detach() first (writes are then invisible to autograd) or copy it"
            why = "it requires grad"
        raise CannotShareError(
            f"cannot share this torch tensor: {why}; {todo}",
            ffi.string(lib.dlshare_reason_name(reason)).decode(),
        )
    resolved = t.detach() if grad else t
    fresh = False
    if conj:
        resolved, fresh = resolved.resolve_conj(), True
    if resolved.is_neg():
        resolved, fresh = resolved.resolve_neg(), True
    if mode == COPY:
        return resolved, 0, COPY
    # a resolved view is new memory nobody else holds: sharing it is the copy; a detached one is
    # still the producer's memory and must be copied
    return resolved, reason, SHARE_OR_COPY if fresh else COPY


def torch_needs_rules(t: Any) -> bool:
    """Cheap test: whether `torch_resolve` would change anything for this tensor."""
    return (
        t.requires_grad
        or t.is_conj()
        or t.is_neg()
        or t.layout is not _strided()
        or t.is_quantized
        or t.is_meta
        or t.is_nested
    )


def _strided():
    return sys.modules["torch"].strided


# ---------------------------------------------------------------------------------------------
# JAX


def is_jax_array(obj: Any) -> bool:
    """JAX arrays are immutable: their memory is imported read-only."""
    module = type(obj).__module__
    return module.startswith(("jaxlib", "jax.")) and hasattr(obj, "__dlpack__")


# ---------------------------------------------------------------------------------------------
# __array__ / __array_interface__ producers


def producer_array(obj: Any) -> tuple[np.ndarray, bool]:
    """NumPy's view of an array-like and whether the producer built new memory for it (a copy
    the producer made: pandas' nullable columns with missing values, an `__array__` returning
    a new array). Uses NumPy 2's protocol first (`__array__(copy=False)` raises when a copy is
    unavoidable), then ownership: an array that nothing but itself (and its own base chain)
    keeps alive was made for this call."""
    try:
        arr = np.asarray(obj, copy=False)
    except ValueError:
        return np.asarray(obj), True
    except TypeError:  # NumPy 1.x: no copy= keyword
        arr = np.asarray(obj)
    made = _only_owner(arr)  # (not inside the return tuple: that would hold one more reference)
    return arr, made


def _only_owner(arr: np.ndarray) -> bool:
    """True when the memory under `arr` is referenced by nothing but `arr`'s chain of bases."""
    root: Any = arr
    depth = 0
    while isinstance(root, np.ndarray) and root.base is not None:
        root = root.base
        depth += 1
    if isinstance(root, np.ndarray):
        # references: the caller's name for it (or a child's .base), this frame's `root` (and
        # `arr` when it is the same object), and getrefcount's argument
        expected = 4 if depth == 0 else 3
        return sys.getrefcount(root) <= expected
    return False  # memory owned by another object (a buffer, a producer): the producer's own


def pandas_dtype_hint(obj: Any) -> str:
    """The pandas dtype (and name) of a Series / Index / extension array, for error messages."""
    dtype = getattr(obj, "dtype", None)
    name = getattr(obj, "name", None)
    where = f"column {name!r} " if name is not None else ""
    return f"{where}of pandas dtype {dtype}"


# ---------------------------------------------------------------------------------------------
# the DLPack C exchange API of a type (consumer side)

_tables: dict[type, int | None] = {}
_functions: dict[type, Any] = {}
_EXCHANGE_NAME = b"dlpack_exchange_api"


def exchange_address(cls: type) -> int | None:
    """The address of `managed_tensor_from_py_object_no_sync` in `cls`'s exchange API, or None
    when the type publishes none or a subclass overrides `__dlpack__` (then the capsule route
    applies: the producer's own export). A malformed table raises, naming the type."""
    if cls in _tables:
        return _tables[cls]
    address = None
    capsule = getattr(cls, "__dlpack_c_exchange_api__", None)
    if capsule is not None and not _dlpack_overridden(cls):
        address = check_exchange_table(cls, capsule)
    _tables[cls] = address
    return address


def exchange_import_fn(cls: type):
    """`exchange_address(cls)` as a ctypes function (None when there is none)."""
    fn = _functions.get(cls, False)
    if fn is False:
        address = exchange_address(cls)
        fn = None
        if address is not None:
            fn = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_void_p)(address)
        _functions[cls] = fn
    return fn


def native_policy(cls: type):
    """For the native fast path (src/ffi/pyext.rs), once per type: None (the Python path handles
    this type), or (address of the exchange function, checks) where checks is None (no rules)
    or torch's (requires_grad, is_conj, is_neg) descriptors, which the fast path calls on each
    tensor before sharing it. Only the exact torch.Tensor type gets the fast path among torch
    types (subclasses may override what the descriptors answer)."""
    try:
        address = exchange_address(cls)
    except Exception:  # a malformed table: the Python path raises the error
        return None
    if address is None:
        return None
    torch_tensor = torch_tensor_type()
    if torch_tensor is not None and issubclass(cls, torch_tensor):
        if cls is not torch_tensor:
            return None
        found = {}
        for name in ("requires_grad", "is_conj", "is_neg"):
            for klass in cls.__mro__:
                if name in klass.__dict__:
                    found[name] = klass.__dict__[name]
                    break
        if len(found) != 3 or type(found["requires_grad"]).__name__ != "getset_descriptor":
            return None
        return address, (found["requires_grad"], found["is_conj"], found["is_neg"])
    return address, None


def _dlpack_overridden(cls: type) -> bool:
    """Whether `cls` redefines `__dlpack__` below the class that published the exchange API."""
    for klass in cls.__mro__:
        if "__dlpack_c_exchange_api__" in klass.__dict__:
            return getattr(cls, "__dlpack__", None) is not getattr(klass, "__dlpack__", None)
        if "__dlpack__" in klass.__dict__:
            return True
    return False


def check_exchange_table(cls: type, capsule: Any) -> int:
    """The address of `managed_tensor_from_py_object_no_sync` after checking the table; raises
    InvalidDLPackError / UnsupportedVersionError saying what is wrong."""
    where = f"{cls.__module__}.{cls.__qualname__}.__dlpack_c_exchange_api__"
    if not _capsule.is_exchange_api(capsule):
        raise InvalidDLPackError(
            f"{where} is not a PyCapsule named 'dlpack_exchange_api' (DLPack 1.3): the type's "
            "exchange API is malformed; use its __dlpack__ instead"
        )
    try:
        address = _capsule.pointer(capsule, _EXCHANGE_NAME)
    except ValueError:
        address = 0
    if not address:
        raise InvalidDLPackError(f"{where} holds a NULL DLPackExchangeAPI table")
    api = ffi.cast("DLPackExchangeAPI *", address)
    version = api.header.version
    if version.major != 1:
        raise UnsupportedVersionError(
            f"{where} is DLPack exchange API version {version.major}.{version.minor}; dlshare "
            "reads major version 1"
        )
    if not api.managed_tensor_from_py_object_no_sync:
        raise InvalidDLPackError(
            f"{where}: managed_tensor_from_py_object_no_sync is NULL (required by DLPack 1.3)"
        )
    return int(ffi.cast("uintptr_t", api.managed_tensor_from_py_object_no_sync))
