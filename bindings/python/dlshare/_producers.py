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
    or, for torch, (requires_grad, is_conj, is_neg, key_offset, key_mask, meta_offset): the
    descriptors the fast path calls on each tensor before sharing it, where the conjugate and
    negative bits can be read instead of calling the two methods (`_calibrate_lazy_bits`), and
    where the autograd metadata pointer is, NULL for a tensor that cannot require grad
    (`_calibrate_autograd_meta`), which spares the `requires_grad` call; -1 when unknown. Only the exact torch.Tensor type gets the fast path among torch
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
        offset, mask = _calibrate_lazy_bits(cls)
        meta = _calibrate_autograd_meta(cls) if offset >= 0 else -1
        return address, (
            found["requires_grad"], found["is_conj"], found["is_neg"], offset, mask, meta
        )
    return address, None


_IMPL_WORDS = 26  # the part of a c10::TensorImpl searched for its dispatch key set (208 bytes)


def _impl_words(t) -> list[int]:
    return [ctypes.c_uint64.from_address(t._cdata + 8 * i).value for i in range(_IMPL_WORDS)]


def _calibrate_autograd_meta(cls: type) -> int:
    """Byte offset of the TensorImpl's autograd metadata pointer, or -1. PyTorch answers
    `requires_grad` False without looking further when that pointer is NULL (tensors made
    without autograd have none), so the fast path reads it first and calls the `requires_grad`
    getter (~50 ns) only when it is set. Found as the one word that is 0 in every fresh tensor
    sampled and non-zero in every tensor that requires grad (leaf, non-leaf, view, transposed,
    complex, `requires_grad_()` on a detached alias); -1 unless exactly one word qualifies.
    Only the direction "NULL => no grad" is relied on, and every grad sample checks it."""
    torch = sys.modules["torch"]
    try:
        fresh = [
            torch.zeros(4),
            torch.ones(2, 3, dtype=torch.float64),
            torch.arange(5),
            torch.zeros(3, dtype=torch.complex64),
            torch.empty(0),
            torch.zeros(()),
        ]
        g = torch.ones(3, requires_grad=True)
        grad = [
            g,
            g * 2,
            g[1:],
            torch.zeros(2, 2, requires_grad=True).T,
            torch.zeros(2, dtype=torch.complex64, requires_grad=True),
            torch.zeros(3).detach().requires_grad_(),
            torch.nn.Parameter(torch.zeros(2)).data.requires_grad_(),
        ]
        if not all(t.requires_grad for t in grad):
            return -1
        fw = [_impl_words(t) for t in fresh]
        gw = [_impl_words(t) for t in grad]
        found = [
            i
            for i in range(_IMPL_WORDS)
            if all(w[i] == 0 for w in fw) and all(w[i] != 0 for w in gw)
        ]
        return 8 * found[0] if len(found) == 1 else -1
    except Exception:
        return -1


def _calibrate_lazy_bits(cls: type) -> tuple[int, int]:
    """Where this PyTorch build keeps the conjugate and negative bits, so that the fast path can
    test them with one memory read instead of calling `is_conj()` / `is_neg()` (each ~60 ns
    more than a plain attribute: PyTorch's generated bindings parse arguments and release the
    GIL). Returns (byte offset of the dispatch key set in the TensorImpl, mask of the two bits)
    or (-1, 0) when the layout is not recognised beyond doubt; then the fast path calls the
    methods. Requirements, all checked on sample tensors: the Python object holds the
    TensorImpl pointer right after its header (what `_cdata` returns); one word of the
    TensorImpl differs by exactly one bit between a tensor and its negative view, the same word
    by another single bit for a conjugate view; and that word's two bits agree with `is_neg()` /
    `is_conj()` on every sample (views, detached aliases, both bits, neither)."""
    torch = sys.modules["torch"]
    try:
        base = [
            torch.zeros(4),
            torch.ones(2, 3, dtype=torch.float64),
            torch.arange(5),
            torch.zeros(3, dtype=torch.complex64),
            torch.zeros(2, 2, dtype=torch.complex128).T,
        ]
        complex_ = [t for t in base if t.is_complex()]
        samples = (
            base
            + [torch._neg_view(t) for t in base]
            + [t.conj() for t in complex_]
            + [torch._neg_view(t.conj()) for t in complex_]
            + [t.conj().imag for t in complex_]
            + [torch._neg_view(t).detach() for t in base]
            + [t.conj().detach() for t in complex_]
        )
        for t in samples:
            if ctypes.c_uint64.from_address(id(t) + 16).value != t._cdata or t._cdata == 0:
                return -1, 0

        words = _impl_words

        def single_bit_diffs(a, b):
            wa, wb = words(a), words(b)
            return {(i, wa[i] ^ wb[i]) for i in range(_IMPL_WORDS) if bin(wa[i] ^ wb[i]).count("1") == 1}

        neg = set.intersection(*(single_bit_diffs(t, torch._neg_view(t)) for t in base))
        conj = set.intersection(*(single_bit_diffs(t, t.conj()) for t in complex_))
        if len(neg) != 1 or len(conj) != 1:
            return -1, 0
        (index, neg_bit), (conj_index, conj_bit) = neg.pop(), conj.pop()
        if index != conj_index or neg_bit == conj_bit:
            return -1, 0
        for t in samples:
            word = words(t)[index]
            if bool(word & neg_bit) != t.is_neg() or bool(word & conj_bit) != t.is_conj():
                return -1, 0
        return 8 * index, neg_bit | conj_bit
    except Exception:
        return -1, 0


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
