"""Tensors and the three conversion modes over the C library. All decisions (share, copy, refuse,
and why) are made by the library; this module translates Python objects into views, DLPack
capsules and options, and results back."""

from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any, NamedTuple

import numpy as np

from . import _capsule
from . import _native as _native_module
from . import _producers
from ._errors import CannotShareError, UnsupportedDtypeError, check
from ._ffi import ffi, lib

SHARE, SHARE_OR_COPY, COPY = (
    lib.DLSHARE_MODE_SHARE,
    lib.DLSHARE_MODE_SHARE_OR_COPY,
    lib.DLSHARE_MODE_COPY,
)
_MODES = {
    "from_numpy": SHARE,
    "share": SHARE,
    "as_tensor": SHARE_OR_COPY,
    "share_or_copy": SHARE_OR_COPY,
    "tensor": COPY,
    "copy": COPY,
}
_CPU = (lib.kDLCPU, 0)

# ---------------------------------------------------------------------------------------------
# dtypes and devices (names come from the library; cached per distinct value)

_typestr_cache: dict[str, tuple[tuple[int, int, int], bool]] = {}
_name_cache: dict[str, tuple[int, int, int]] = {}
_dtype_name_cache: dict[tuple[int, int, int], str] = {}
_typestr_of_cache: dict[tuple[int, int, int], str | None] = {}


def _from_typestr(typestr: str) -> tuple[tuple[int, int, int], bool]:
    hit = _typestr_cache.get(typestr)
    if hit is None:
        out = ffi.new("DLDataType *")
        swapped = ffi.new("bool *")
        check(lib.dlshare_dtype_from_typestr(typestr.encode(), out, swapped))
        hit = ((out.code, out.bits, out.lanes), bool(swapped[0]))
        _typestr_cache[typestr] = hit
    return hit


def _dtype_name(key: tuple[int, int, int]) -> str:
    name = _dtype_name_cache.get(key)
    if name is None:
        buf = ffi.new("char[64]")
        check(lib.dlshare_dtype_name(key, buf, 64))
        name = _dtype_name_cache[key] = ffi.string(buf).decode()
    return name


def _typestr_of(key: tuple[int, int, int]) -> str | None:
    if key not in _typestr_of_cache:
        buf = ffi.new("char[16]")
        status = lib.dlshare_dtype_typestr(key, buf, 16)
        _typestr_of_cache[key] = ffi.string(buf).decode() if status == 0 else None
    return _typestr_of_cache[key]


def dtype_key(dtype: Any) -> tuple[int, int, int]:
    """(code, bits, lanes) of a dtype given as a name ("float32", "bfloat16"), a NumPy dtype or
    type, or a torch dtype."""
    if isinstance(dtype, str):
        hit = _name_cache.get(dtype)
        if hit is not None:
            return hit
        out = ffi.new("DLDataType *")
        if lib.dlshare_dtype_from_name(dtype.encode(), out) == 0:
            hit = _name_cache[dtype] = (out.code, out.bits, out.lanes)
            return hit
    text = str(dtype)
    if text.startswith("torch."):
        return dtype_key(text[len("torch."):])
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"cannot interpret {dtype!r} as a dtype") from exc
    key, _ = _from_typestr(np_dtype.newbyteorder("=").str)
    return key


def device_key(device: Any) -> tuple[int, int]:
    """(device_type, device_id) of "cpu", "cuda:0", a torch.device or a DLPack tuple."""
    if isinstance(device, tuple) and len(device) == 2:
        return int(device[0]), int(device[1])
    out = ffi.new("DLDevice *")
    check(lib.dlshare_device_from_name(str(device).encode(), out))
    return out.device_type, out.device_id


def stream_handle(stream: Any) -> int | None:
    """A CUDA stream as the integer the library takes: an int (a cudaStream_t, or 1/2 for the
    legacy/per-thread default stream), a torch.cuda.Stream (`.cuda_stream`), a CuPy stream
    (`.ptr`), or None."""
    if stream is None or isinstance(stream, int):
        return stream
    for attribute in ("cuda_stream", "ptr"):
        handle = getattr(stream, attribute, None)
        if isinstance(handle, int):
            return handle
    raise TypeError(
        f"stream must be an int (cudaStream_t), a torch.cuda.Stream or a CuPy stream, got "
        f"{type(stream).__name__}"
    )


def _dlshare_stream(device_id: int) -> int | None:
    """dlshare's own stream on a CUDA device, None when CUDA is not usable."""
    out = ffi.new("void **")
    if lib.dlshare_cuda_stream(device_id, out) != 0:
        return None
    return int(ffi.cast("uintptr_t", out[0]))


def _device_name(key: tuple[int, int]) -> str:
    buf = ffi.new("char[64]")
    check(lib.dlshare_device_name(key, buf, 64))
    return ffi.string(buf).decode()


# ---------------------------------------------------------------------------------------------
# keeping Python owners alive while the library shares their memory

_keep: dict[int, Any] = {}
_tokens = itertools.count(1)


@ffi.callback("void(void *)")
def _release_owner(ctx):  # called by the library exactly once per successful view import
    _keep.pop(int(ffi.cast("uintptr_t", ctx)), None)


def _keep_alive(owner: Any) -> Any:
    token = next(_tokens)
    _keep[token] = owner
    return ffi.cast("void *", token)


class _Scratch(threading.local):
    """Per-thread C structs reused by every call (allocation costs more than the call)."""

    def __init__(self) -> None:
        self.view = ffi.new("dlshare_view *")
        self.shape = ffi.new("int64_t[64]")
        self.strides = ffi.new("int64_t[64]")
        self.options = ffi.new("dlshare_options *")
        self.handle = ffi.new("dlshare_tensor **")
        self.decision = ffi.new("dlshare_decision *")
        self.presets: dict = {}


_scratch = _Scratch()


def _options(
    s: _Scratch, mode: int, dtype, device, allow_read_only: bool, complex_to_real: bool, stream=None
):
    if dtype is None and device is None and stream is None:
        # the common case: one prepared struct per (mode, read-only permission)
        key = (mode, allow_read_only, complex_to_real)
        preset = s.presets.get(key)
        if preset is None:
            preset = s.presets[key] = ffi.new("dlshare_options *")
            _fill_options(preset, mode, None, None, allow_read_only, complex_to_real)
        return preset
    return _fill_options(s.options, mode, dtype, device, allow_read_only, complex_to_real, stream)


def _fill_options(
    o, mode: int, dtype, device, allow_read_only: bool, complex_to_real: bool, stream=None
):
    o.mode = mode
    o.has_dtype = dtype is not None
    if dtype is not None:
        o.dtype = dtype_key(dtype)
    o.has_device = device is not None
    if device is not None:
        o.device = device_key(device)
    o.allow_read_only = allow_read_only
    o.allow_complex_to_real = complex_to_real
    handle = stream_handle(stream)
    o.stream = ffi.NULL if handle is None else ffi.cast("void *", handle)
    return o


def _reason_name(code: int) -> str | None:
    return None if code == 0 else ffi.string(lib.dlshare_reason_name(code)).decode()


# ---------------------------------------------------------------------------------------------
# the Tensor


_native = _native_module.load()
if _native is not None:
    _TensorBase = _native["TensorBase"]
else:

    class _TensorBase:
        """The pure-Python twin of the library's native TensorBase (see _native.py)."""

        __slots__ = ("_address", "_reason_code", "shared")

        def __del__(self, _release=lib.dlshare_tensor_release) -> None:
            address = getattr(self, "_address", 0)
            if address:
                self._address = 0
                _release(ffi.cast("dlshare_tensor *", address))

        @property
        def readonly(self) -> bool:
            """True when the memory must not be written."""
            self._info()
            return bool(self._flags & lib.DLPACK_FLAG_BITMASK_READ_ONLY)

        def __dlpack_device__(self) -> tuple[int, int]:
            dev = self._info().device
            return (int(dev.device_type), int(dev.device_id))

        # __dlpack__ is Tensor._dlpack (set below)


class Tensor(_TensorBase):
    """A dlshare tensor handle: memory shared with (or copied from) its source, refcounted in the
    library. `.shared` and `.copy_reason` say how it was made."""

    __slots__ = ("_dl", "_flags", "_copy_reason", "_meta", "__weakref__")

    def __init__(self) -> None:
        raise TypeError("use dlshare.from_numpy, as_tensor, tensor or from_dlpack")

    @classmethod
    def _wrap(cls, handle, shared: bool, reason: int = 0) -> Tensor:
        """A Tensor taking ownership of `handle` (a `dlshare_tensor *` from a cffi call);
        `reason` is the `dlshare_reason` of the conversion that made it."""
        address = int(ffi.cast("uintptr_t", handle))
        if _native is not None:
            return _native_wrap(address, shared, int(reason))
        t = object.__new__(cls)
        t._address = address
        t._reason_code = int(reason)
        t.shared = shared
        return t

    @property
    def _handle(self):
        return ffi.cast("dlshare_tensor *", getattr(self, "_address", 0))

    @property
    def copy_reason(self) -> str | None:
        """Why it was copied (a reason code such as "negative_stride"), None when shared."""
        try:
            return self._copy_reason
        except AttributeError:
            return _reason_name(getattr(self, "_reason_code", 0))

    @copy_reason.setter
    def copy_reason(self, value: str | None) -> None:
        self._copy_reason = value

    @property
    def meta(self) -> dict | None:
        """Extra facts recorded by helpers (e.g. from_dataframe's column names), or None."""
        try:
            return self._meta
        except AttributeError:
            return None

    @meta.setter
    def meta(self, value: dict | None) -> None:
        self._meta = value

    def _info(self):
        try:
            return self._dl
        except AttributeError:
            dl = ffi.new("DLTensor *")
            flags = ffi.new("uint64_t *")
            check(lib.dlshare_tensor_info(self._handle, dl, flags))
            self._dl, self._flags = dl, int(flags[0])
            return dl

    # -- properties ----------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return self._info().ndim

    @property
    def shape(self) -> tuple[int, ...]:
        dl = self._info()
        return tuple(dl.shape[0 : dl.ndim]) if dl.ndim else ()

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in elements (as PyTorch)."""
        dl = self._info()
        return tuple(dl.strides[0 : dl.ndim]) if dl.ndim else ()

    @property
    def _dtype_key(self) -> tuple[int, int, int]:
        d = self._info().dtype
        return (d.code, d.bits, d.lanes)

    @property
    def dtype(self) -> str:
        return _dtype_name(self._dtype_key)

    @property
    def itemsize(self) -> int:
        d = self._info().dtype
        return max(1, d.bits * d.lanes // 8)

    @property
    def device(self) -> str:
        dev = self._info().device
        return _device_name((dev.device_type, dev.device_id))

    @property
    def data_ptr(self) -> int:
        """Address of the first element."""
        dl = self._info()
        return int(ffi.cast("uintptr_t", dl.data)) + dl.byte_offset

    @property
    def nbytes(self) -> int:
        out = ffi.new("uint64_t *")
        check(lib.dlshare_tensor_nbytes(self._handle, out))
        return int(out[0])

    def is_contiguous(self) -> bool:
        out = ffi.new("bool *")
        check(lib.dlshare_tensor_is_c_contiguous(self._handle, out))
        return bool(out[0])

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        how = "shared" if self.shared else f"copied: {self.copy_reason}"
        ro = ", readonly" if self.readonly else ""
        return (
            f"dlshare.Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device}, "
            f"{how}{ro})"
        )

    # -- NumPy ---------------------------------------------------------------------------------
    @property
    def __array_interface__(self) -> dict:
        dl = self._info()
        if dl.device.device_type not in (lib.kDLCPU, lib.kDLCUDAHost):
            raise BufferError(f"a {self.device} tensor is not in CPU memory; use .to('cpu')")
        typestr = _typestr_of(self._dtype_key)
        if typestr is None or typestr.startswith("|V"):
            raise TypeError(
                f"{self.dtype} has no NumPy dtype; convert first, e.g. .to('float32'), or "
                "share it with torch.from_dlpack"
            )
        itemsize = self.itemsize
        return {
            "version": 3,
            "data": (self.data_ptr, self.readonly),
            "shape": self.shape,
            "strides": tuple(s * itemsize for s in self.strides),
            "typestr": typestr,
        }

    def numpy(self) -> np.ndarray:
        """A zero-copy NumPy view (non-writeable for a read-only tensor); keeps the tensor
        alive."""
        return np.asarray(self)

    # -- DLPack (Array API standard) -----------------------------------------------------------
    def _dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """DLPack export (Array API standard). For a CUDA tensor, `stream` is the consumer's
        stream: None or 1 the legacy default stream, 2 the per-thread default stream, another
        int a cudaStream_t, -1 no synchronisation; the consumer's stream is made to wait for
        dlshare's pending work on the device (an event, the host does not block)."""
        if stream is not None and stream != -1 and self.__dlpack_device__()[0] == lib.kDLCPU:
            raise BufferError("stream must be None for a CPU tensor")
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        source = self
        own_copy = False  # a copy made for this export alone: the consumer owns it (IS_COPIED)
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            if copy is False:
                raise BufferError(
                    f"dl_device={tuple(dl_device)} differs from the tensor's "
                    f"{self.__dlpack_device__()} and copy=False forbids the copy"
                )
            source = self.to(device=tuple(dl_device), copy=True)
        elif copy and versioned:
            own_copy = True
        elif copy:
            source = self.clone()
        device_type, device_id = source.__dlpack_device__()
        if device_type == lib.kDLCUDA and stream != -1:
            status = lib.dlshare_cuda_stream_wait(device_id, 1 if stream is None else stream)
            if status != lib.DLSHARE_ERR_DEVICE_UNAVAILABLE:  # no CUDA: nothing of ours pending
                check(status)
        if versioned:
            out = ffi.new("DLManagedTensorVersioned **")
            export = lib.dlshare_tensor_to_dlpack_copy if own_copy else lib.dlshare_tensor_to_dlpack
            check(export(source._handle, out))
        else:
            if source.readonly:
                raise BufferError(
                    "a read-only tensor cannot be exported as a legacy DLPack capsule (it has "
                    "no read-only flag); ask for max_version=(1, 0) or copy it"
                )
            out = ffi.new("DLManagedTensor **")
            check(lib.dlshare_tensor_to_dlpack_legacy(source._handle, out))
        return _capsule.make(out[0], versioned)

    # -- conversions ---------------------------------------------------------------------------
    def _convert(
        self, mode: int, dtype=None, device=None, allow_read_only=True, stream=None
    ) -> Tensor:
        s = _scratch
        opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
        check(lib.dlshare_tensor_convert(self._handle, opts, s.handle, s.decision), s.decision)
        d = s.decision
        return Tensor._wrap(s.handle[0], bool(d.shared), d.reason)

    def to(self, dtype=None, device=None, copy: bool = False, *, stream=None) -> Tensor:
        """Converted tensor: shares when nothing changes (unless copy=True), else copies.
        `stream` (CUDA copies): order the copy on that stream instead of completing it before
        returning."""
        return self._convert(COPY if copy else SHARE_OR_COPY, dtype, device, True, stream)

    def clone(self) -> Tensor:
        return self._convert(COPY)

    def contiguous(self) -> Tensor:
        return self if self.is_contiguous() else self._convert(COPY)


# ---------------------------------------------------------------------------------------------
# sources: NumPy-style views and DLPack producers


def _view_from_interface(s: _Scratch, iface: dict):
    data = iface.get("data")
    if not isinstance(data, tuple):
        return None  # a buffer object instead of (pointer, read_only): let NumPy resolve it
    if iface.get("mask") is not None:
        raise UnsupportedDtypeError("masked arrays cannot be tensors; fill the mask first")
    key, swapped = _from_typestr(iface["typestr"])
    v = s.view
    v.data = ffi.cast("void *", data[0])
    v.dtype = key
    shape = iface["shape"]
    v.ndim = len(shape)
    if v.ndim > 64:
        raise ValueError(f"{v.ndim} dimensions: at most 64 are supported")
    s.shape[0 : len(shape)] = shape
    v.shape = s.shape
    strides = iface.get("strides")
    if strides is None:
        v.byte_strides = ffi.NULL
    else:
        s.strides[0 : len(strides)] = strides
        v.byte_strides = s.strides
    v.device = _CPU
    v.flags = (lib.DLSHARE_VIEW_READ_ONLY if data[1] else 0) | (
        lib.DLSHARE_VIEW_BYTE_SWAPPED if swapped else 0
    )
    v.release = _release_owner
    return v


def _as_ndarray(obj: Any) -> tuple[np.ndarray | None, bool]:
    """NumPy's view of `obj` when it is array-like without DLPack (pandas, buffers, array
    interface), and whether the producer built new memory for it (see
    `_producers.producer_array`); (None, False) for Python scalars and sequences."""
    if isinstance(obj, np.ndarray):
        return obj, False
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__array__"):
        return _producers.producer_array(obj)
    try:
        return np.asarray(memoryview(obj)), False  # the buffer protocol exports the producer's
    except TypeError:
        return None, False


def _infer_sequence(obj: Any, dtype) -> np.ndarray:
    """Python scalars and nested lists, with torch.tensor's dtype inference."""
    arr = np.asarray(obj)
    if dtype is not None:
        return arr
    kind = arr.dtype.kind
    if kind == "c":
        return arr.astype(np.complex64)
    if kind == "f":
        return arr.astype(np.float32)
    if kind == "b":
        return arr
    if kind in "iu":
        return arr.astype(np.int64)
    raise UnsupportedDtypeError(
        f"cannot make a tensor of {type(obj).__name__} with NumPy dtype {arr.dtype}; only "
        "numbers and booleans"
    )


# DLPack 1.3's C exchange API: a type may publish `__dlpack_c_exchange_api__`, a capsule holding
# a table of C functions; `managed_tensor_from_py_object_no_sync` hands out a managed tensor
# for an object without building a capsule (PyTorch 2.10+ and dlshare.Tensor publish it). Looked
# up and checked once per type (_producers.exchange_import_fn); used for CPU tensors (the
# no-sync variant does no stream synchronisation).
_exchange_import_fn = _producers.exchange_import_fn
_exchange_out = ctypes.c_void_p()
_exchange_out_ref = ctypes.byref(_exchange_out)


def _wrap_result(s: _Scratch, producer_reason: int) -> Tensor:
    """The Tensor of a successful import into `s.handle` / `s.decision`. A producer's reason
    (a lazy view resolved, a producer's own copy) replaces the library's: the memory imported
    is not the producer's, so the result is never reported as shared."""
    d = s.decision
    if producer_reason:
        return Tensor._wrap(s.handle[0], False, producer_reason)
    return Tensor._wrap(s.handle[0], bool(d.shared), d.reason)


def _from_exchange(fn, obj, mode, dtype, device, allow_read_only, stream=None, producer_reason=0):
    """A tensor through the exchange API, or None when that route does not apply."""
    if fn(obj, _exchange_out_ref) != 0 or not _exchange_out.value:
        return None
    managed = ffi.cast("DLManagedTensorVersioned *", _exchange_out.value)
    if managed.dl_tensor.device.device_type != lib.kDLCPU:
        managed.deleter(managed)  # device memory needs the stream-aware __dlpack__ route
        return None
    s = _scratch
    opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
    status = lib.dlshare_tensor_from_dlpack(managed, opts, s.handle, s.decision)
    if status != 0:
        if managed.deleter:
            managed.deleter(managed)  # a failed import leaves the tensor ours to free
        check(status, s.decision)
    return _wrap_result(s, producer_reason)


def _call_dlpack(obj: Any):
    """The producer's capsule. A CUDA producer is given dlshare's stream on its device, so that
    its pending work is ordered before everything dlshare does with the memory."""
    extra = {}
    device = getattr(obj, "__dlpack_device__", None)
    if device is not None:
        device_type, device_id = device()
        if device_type == lib.kDLCUDA:
            stream = _dlshare_stream(device_id)
            if stream is not None:
                extra["stream"] = stream
    try:
        return obj.__dlpack__(max_version=(1, 3), **extra)
    except TypeError:
        if not extra:
            return obj.__dlpack__()
    try:
        return obj.__dlpack__(**extra)
    except TypeError:
        return obj.__dlpack__()


def _from_capsule(
    capsule,
    mode,
    dtype,
    device,
    allow_read_only,
    explain_only=False,
    stream=None,
    producer_reason=0,
    read_only=False,
):
    """`read_only`: the producer's memory is immutable (JAX) whatever the capsule says."""
    managed, versioned = _capsule.open(capsule)
    if read_only and not versioned:
        return _from_legacy_read_only(
            capsule, managed, mode, dtype, device, allow_read_only, explain_only, stream
        )
    if read_only:
        managed.flags |= lib.DLPACK_FLAG_BITMASK_READ_ONLY
    s = _scratch
    opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
    if explain_only:
        fn = lib.dlshare_explain_dlpack if versioned else lib.dlshare_explain_dlpack_legacy
        check(fn(managed, opts, s.decision), s.decision)
        return s.decision
    fn = lib.dlshare_tensor_from_dlpack if versioned else lib.dlshare_tensor_from_dlpack_legacy
    check(fn(managed, opts, s.handle, s.decision), s.decision)
    _capsule.mark_used(capsule, versioned)
    return _wrap_result(s, producer_reason)


def _from_legacy_read_only(
    capsule, managed, mode, dtype, device, allow_read_only, explain_only, stream
):
    """A legacy capsule (no flags field) of immutable memory, imported as a read-only view; the
    capsule, kept alive until the library releases the view, frees the tensor then."""
    dl = managed.dl_tensor
    s = _scratch
    v = s.view
    v.data = ffi.cast("char *", dl.data) + dl.byte_offset
    v.dtype = dl.dtype
    v.ndim = dl.ndim
    if dl.ndim > 64:
        raise ValueError(f"{dl.ndim} dimensions: at most 64 are supported")
    item = max(1, dl.dtype.bits * dl.dtype.lanes // 8)
    for i in range(dl.ndim):
        s.shape[i] = dl.shape[i]
        if dl.strides != ffi.NULL:
            s.strides[i] = dl.strides[i] * item
    v.shape = s.shape
    v.byte_strides = s.strides if dl.strides != ffi.NULL else ffi.NULL
    v.device = (dl.device.device_type, dl.device.device_id)
    v.flags = lib.DLSHARE_VIEW_READ_ONLY
    v.release = _release_owner
    opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
    return _convert_view(s, v, opts, capsule, explain_only, 0)


def _from_ndarray(
    arr: np.ndarray,
    mode,
    dtype,
    device,
    allow_read_only,
    explain_only=False,
    stream=None,
    producer_reason=0,
):
    s = _scratch
    view = _view_from_interface(s, arr.__array_interface__)
    if view is None:
        return _from_ndarray(
            np.asarray(arr), mode, dtype, device, allow_read_only, explain_only, stream,
            producer_reason,
        )
    opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
    return _convert_view(s, view, opts, arr, explain_only, producer_reason)


def _convert_view(s, view, opts, owner, explain_only, producer_reason):
    """Explains, or converts, a filled-in view; a shared result keeps `owner` alive until the
    library releases the view."""
    if explain_only:
        view.release_ctx = ffi.NULL
        check(lib.dlshare_explain_view(view, opts, s.decision), s.decision)
        return s.decision
    token = _keep_alive(owner)
    view.release_ctx = token
    status = lib.dlshare_tensor_from_view(view, opts, s.handle, s.decision)
    if status != 0:
        _keep.pop(int(ffi.cast("uintptr_t", token)), None)
        check(status, s.decision)
    return _wrap_result(s, producer_reason)


def _convert(
    obj: Any, mode: int, dtype, device, allow_read_only: bool, explain_only=False, stream=None
):
    if isinstance(obj, np.ndarray):
        return _from_ndarray(obj, mode, dtype, device, allow_read_only, explain_only, stream)
    if isinstance(obj, Tensor):
        if explain_only:
            s = _scratch
            opts = _options(s, mode, dtype, device, allow_read_only, True, stream)
            check(lib.dlshare_explain_tensor(obj._handle, opts, s.decision), s.decision)
            return s.decision
        return obj._convert(mode, dtype, device, allow_read_only, stream)
    return _import_foreign(obj, mode, dtype, device, allow_read_only, explain_only, stream)


def _explained(decision, producer_reason: int, mode: int):
    """An explanation-only result: the library's decision, or the producer's reason."""
    if not producer_reason:
        return decision
    name = _reason_name(producer_reason)
    what = {
        lib.DLSHARE_REASON_LAZY_CONJUGATE: "the producer's tensor is a lazy conjugate view; "
        "the copy holds t.resolve_conj()",
        lib.DLSHARE_REASON_LAZY_NEGATIVE: "the producer's tensor is a lazy negation; the copy "
        "holds t.resolve_neg()",
        lib.DLSHARE_REASON_REQUIRES_GRAD: "the producer's tensor requires grad; the copy holds "
        "t.detach()",
        lib.DLSHARE_REASON_PRODUCER_COPY: "the producer built new memory for the conversion "
        "(nothing of it is shared)",
    }[producer_reason]
    return Explanation(False, name, f"copied ({name}): {what}")


def _import_foreign(
    obj: Any,
    mode: int,
    dtype,
    device,
    allow_read_only: bool,
    explain_only=False,
    stream=None,
    array_protocols=True,
):
    """Any object that is not a NumPy array or a dlshare Tensor, after its producer's rules
    (module _producers): torch tensors, JAX arrays, other DLPack producers, then (when
    `array_protocols`) `__array__` / `__array_interface__` / buffer objects."""
    reason = 0
    torch_tensor = _producers.torch_tensor_type()
    if (
        torch_tensor is not None
        and isinstance(obj, torch_tensor)
        and not _producers.overrides_dlpack(type(obj))
    ):
        obj, reason, mode = _producers.torch_resolve(obj, mode)
    if not explain_only:
        fn = _exchange_import_fn(type(obj))
        if fn is not None:
            t = _from_exchange(fn, obj, mode, dtype, device, allow_read_only, stream, reason)
            if t is not None:
                return t
    if hasattr(obj, "__dlpack__") and not type(obj).__module__.startswith("pandas"):
        capsule = _call_dlpack(obj)
        result = _from_capsule(
            capsule, mode, dtype, device, allow_read_only, explain_only, stream, reason,
            read_only=_producers.is_jax_array(obj),
        )
        return _explained(result, reason, mode) if explain_only else result
    if not array_protocols:
        raise TypeError(
            f"{type(obj).__name__} is not a DLPack producer (no __dlpack__); use as_tensor or "
            "tensor for other array-likes"
        )
    arr, made = _as_ndarray(obj)
    if arr is not None:
        if made:
            if mode == SHARE:
                raise CannotShareError(
                    f"cannot share {type(obj).__name__}: its producer builds new memory for the "
                    f"conversion ({_producers.pandas_dtype_hint(obj)}); use as_tensor or tensor",
                    "producer_copy",
                )
            if mode != COPY:
                reason = lib.DLSHARE_REASON_PRODUCER_COPY
        try:
            result = _from_ndarray(
                arr, mode, dtype, device, allow_read_only, explain_only, stream, reason
            )
        except UnsupportedDtypeError as exc:
            if arr.dtype.kind in "OUSVMm" or not type(obj).__module__.startswith("pandas"):
                raise UnsupportedDtypeError(
                    f"{exc} ({type(obj).__name__} {_producers.pandas_dtype_hint(obj)}, NumPy "
                    f"dtype {arr.dtype}; fill missing values and cast to a numeric dtype first)"
                ) from None
            raise
        return _explained(result, reason, mode) if explain_only else result
    if explain_only:
        return None
    t = _from_ndarray(_infer_sequence(obj, dtype), COPY, dtype, device, False, False, stream)
    t.copy_reason = "not_an_array"
    return t


# ---------------------------------------------------------------------------------------------
# the public functions


def _from_numpy_py(arr: np.ndarray, *, readonly: bool = False) -> Tensor:
    """Share a NumPy array's memory, or raise CannotShareError (with `.reason`). Like
    torch.from_numpy; `readonly=True` shares read-only memory as a read-only tensor."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(arr).__name__}")
    try:
        # NumPy's own DLPack export is the cheapest way in, and its deleter needs no Python.
        capsule = arr.__dlpack__(max_version=(1, 0))
    except (BufferError, TypeError):
        # byte-swapped, odd strides, unsupported dtypes, old NumPy: the view path explains
        return _from_ndarray(arr, SHARE, None, None, readonly)
    return _from_capsule(capsule, SHARE, None, None, readonly)


def _as_tensor_py(obj: Any, dtype=None, device=None, *, stream=None) -> Tensor:
    """Share when possible, otherwise copy (always copies for a dtype or device change). Like
    torch.as_tensor. `device`: "cpu", "cuda:N", "cuda_host:N" (pinned) or a DLPack tuple;
    `stream` (CUDA copies): order the copy on that stream (an int cudaStream_t or a
    torch/CuPy stream) instead of completing it before returning."""
    return _convert(obj, SHARE_OR_COPY, dtype, device, False, stream=stream)


if _native is None:
    Tensor.__dlpack__ = Tensor._dlpack


# The public from_numpy / as_tensor: the library's native callables where available (they take
# the plain cases and hand every other call, unchanged, to the Python functions above).
if _native is not None:
    _native_wrap = _native["_wrap"]
    _native["_configure"](
        Tensor, np.ndarray, _from_numpy_py, _as_tensor_py, Tensor._dlpack,
        _producers.native_policy,
    )
    from_numpy = _native["from_numpy"]
    as_tensor = _native["as_tensor"]
    # DLPack 1.3's C exchange API (producer side, src/ffi/pyexchange.rs): consumers that speak
    # it (tvm_ffi.from_dlpack) import dlshare tensors without a capsule. The table's functions
    # read the native object layout, so it is published with the native path only.
    Tensor.__dlpack_c_exchange_api__ = _native["exchange_api"]
else:
    from_numpy, as_tensor = _from_numpy_py, _as_tensor_py
    from_numpy.__name__, as_tensor.__name__ = "from_numpy", "as_tensor"


def tensor(obj: Any, dtype=None, device=None, *, stream=None) -> Tensor:
    """Always copy. Like torch.tensor. `device` and `stream` as for `as_tensor`."""
    return _convert(obj, COPY, dtype, device, False, stream=stream)


def _create(fn, shape, dtype, device) -> Tensor:
    dims = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    out = ffi.new("dlshare_tensor **")
    c_shape = ffi.new("int64_t[]", dims) if dims else ffi.NULL
    check(fn(dtype_key(dtype), len(dims), c_shape, device_key(device), out))
    return Tensor._wrap(out[0], False)


def empty(shape, dtype="float32", device="cpu", *, shared: bool = False) -> Tensor:
    """A new C-contiguous tensor with uninitialised contents, 256-byte aligned, on "cpu",
    "cuda:N" or "cuda_host:N" (pinned host memory). `shared=True`: in shared memory that other
    processes can map (CPU only; zero-filled, see `Tensor.share_memory`)."""
    if shared:
        return _shm.empty_shared(shape, dtype, device)
    return _create(lib.dlshare_tensor_empty, shape, dtype, device)


def zeros(shape, dtype="float32", device="cpu", *, shared: bool = False) -> Tensor:
    """As `empty`, filled with zeros."""
    if shared:
        return _shm.empty_shared(shape, dtype, device)
    return _create(lib.dlshare_tensor_zeros, shape, dtype, device)


def from_dlpack(obj: Any, *, device=None, copy: bool | None = None, stream=None) -> Tensor:
    """Consume any `__dlpack__` producer (or an unconsumed DLPack capsule). copy=None shares when
    possible, copy=True always copies, copy=False shares or raises. Read-only producers give
    read-only tensors. A CUDA producer is asked to order its pending work before dlshare's
    stream; `stream` orders a CUDA copy on that stream (see `as_tensor`)."""
    mode = SHARE_OR_COPY if copy is None else (COPY if copy else SHARE)
    if type(obj).__name__ == "PyCapsule":
        return _from_capsule(obj, mode, None, device, True, stream=stream)
    if isinstance(obj, Tensor):
        return obj._convert(mode, None, device, True, stream)
    return _import_foreign(obj, mode, None, device, True, stream=stream, array_protocols=False)


class Explanation(NamedTuple):
    """What a conversion would do: `.shared`, `.reason` (None when shared), `.detail`."""

    shared: bool
    reason: str | None
    detail: str

    def __str__(self) -> str:
        return self.detail


def explain(obj: Any, dtype=None, device=None, mode: str = "as_tensor") -> Explanation:
    """Say whether `mode` ("from_numpy", "as_tensor" or "tensor") would share `obj`, and why
    not. Converts nothing. A refusal (from_numpy) is explained, not raised."""
    try:
        code = _MODES[mode]
    except KeyError:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}") from None
    try:
        d = _convert(obj, code, dtype, device, False, explain_only=True)
    except CannotShareError as exc:
        return Explanation(False, exc.reason, str(exc))
    if d is None:
        return Explanation(
            False, "not_an_array", f"{type(obj).__name__} is not an array: the data is copied"
        )
    if isinstance(d, Explanation):
        return d
    return Explanation(
        bool(d.shared), _reason_name(d.reason), ffi.string(d.detail).decode("utf-8", "replace")
    )


def _byte_range(obj: Any) -> tuple[int, int]:
    if isinstance(obj, Tensor):
        ptr, shape, strides, item = obj.data_ptr, obj.shape, obj.strides, obj.itemsize
        strides = tuple(s * item for s in strides)
    else:
        if not hasattr(obj, "__array_interface__") and hasattr(obj, "__dlpack__"):
            return _byte_range(from_dlpack(obj, copy=False))
        arr = np.asarray(obj)
        ptr, shape, strides, item = (
            arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.itemsize
        )
    if 0 in shape:
        return (ptr, ptr)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + item
    return (ptr + lo, ptr + hi)


def shares_memory(a: Any, b: Any) -> bool:
    """Whether the memory spans of two arrays/tensors overlap (NumPy's may_share_memory test)."""
    a0, a1 = _byte_range(a)
    b0, b1 = _byte_range(b)
    return a0 < b1 and b0 < a1


def live_tensor_count() -> int:
    """Storages alive in the library (for leak tests)."""
    return int(lib.dlshare_live_tensor_count())


def set_cache_limit(nbytes: int | None) -> None:
    """How many bytes of freed large CPU buffers the library keeps for the next tensor of the
    same size (default 256 MiB, or DLSHARE_CACHE_BYTES). 0 gives every cached buffer back and
    keeps none; None restores the default."""
    check(lib.dlshare_set_cache_limit(-1 if nbytes is None else int(nbytes)))


def cache_limit() -> int:
    """The limit set with `set_cache_limit`, in bytes."""
    return int(lib.dlshare_get_cache_limit())


def cached_bytes() -> int:
    """Bytes of freed buffers held for reuse now."""
    return int(lib.dlshare_cached_bytes())


def set_num_threads(n: int | None) -> None:
    """Caps the threads one large copy uses (None: the default, DLSHARE_NUM_THREADS or every
    core)."""
    check(lib.dlshare_set_num_threads(0 if n is None else int(n)))


def get_num_threads() -> int:
    """The most threads one large copy uses now."""
    return int(lib.dlshare_get_num_threads())


# pickling, shared memory and multiprocessing (dlshare/_shm.py)
from . import _shm  # noqa: E402  (needs the definitions above)

_shm.install(Tensor)
