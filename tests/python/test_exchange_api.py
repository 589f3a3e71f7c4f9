"""DLPack 1.3's C exchange API, both sides (issue 11).

Producer: `dlshare.Tensor.__dlpack_c_exchange_api__` (src/ffi/pyexchange.rs) as consumed by a
real consumer, apache-tvm-ffi (`tvm_ffi.from_dlpack`), and by calling each table function.
Consumer: the checks on other types' tables (malformed tables raise a clear error, naming the
type; docs/hardening.md lists the cases)."""

import ctypes
import gc
import sys

import numpy as np
import pytest

import dlshare
from dlshare import _core, _producers
from dlshare._ffi import ffi, lib

pytestmark = pytest.mark.skipif(
    _core._native is None, reason="skipped: the exchange API is published by the native path"
)

_capi = ctypes.pythonapi
_capi.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_capi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capi.PyCapsule_New.restype = ctypes.py_object


def table():
    capsule = dlshare.Tensor.__dlpack_c_exchange_api__
    assert _capi.PyCapsule_IsValid(capsule, b"dlpack_exchange_api") == 1
    return ffi.cast("DLPackExchangeAPI *", _capi.PyCapsule_GetPointer(capsule, b"dlpack_exchange_api"))


def test_the_type_publishes_a_dlpack_1_3_table_also_reachable_from_c():
    api = table()
    assert (api.header.version.major, api.header.version.minor) == (1, 3)
    assert api.header.prev_api == ffi.NULL
    for name in ("managed_tensor_allocator", "managed_tensor_from_py_object_no_sync",
                 "managed_tensor_to_py_object_no_sync", "dltensor_from_py_object_no_sync",
                 "current_work_stream"):
        assert getattr(api, name) != ffi.NULL, name
    assert api == lib.dlshare_dlpack_exchange_api()


class CapsuleCounter:
    """Counts `Tensor.__dlpack__` calls (every capsule dlshare makes goes through it)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = dlshare.Tensor.__dlpack__

        def counting(tensor, *args, **kwargs):
            self.calls += 1
            return original(tensor, *args, **kwargs)

        monkeypatch.setattr(dlshare.Tensor, "__dlpack__", counting)


def test_tvm_ffi_imports_dlshare_tensors_through_the_exchange_api(monkeypatch):
    tvm_ffi = pytest.importorskip("tvm_ffi", reason="skipped: apache-tvm-ffi not installed")
    counter = CapsuleCounter(monkeypatch)
    arr = np.arange(24, dtype=np.float32).reshape(4, 6)
    t = dlshare.from_numpy(arr)
    gc.collect()
    live = dlshare.live_tensor_count()
    f = tvm_ffi.from_dlpack(t)
    assert counter.calls == 0  # no capsule: the C exchange API was used
    assert f.data_ptr() == t.data_ptr == arr.ctypes.data  # zero-copy, all the way to NumPy's
    assert tuple(f.shape) == (4, 6) and str(f.dtype) == "float32"
    np.testing.assert_array_equal(np.from_dlpack(f), arr)
    arr[1, 2] = -5.0  # one memory: the write shows through tvm-ffi's tensor
    assert np.from_dlpack(f)[1, 2] == -5.0
    # the managed tensor keeps the storage; its deleter runs once, when tvm-ffi lets go
    before = sys.getrefcount(arr)
    del t
    gc.collect()
    assert dlshare.live_tensor_count() == live
    del f
    gc.collect()
    assert dlshare.live_tensor_count() == live - 1
    assert sys.getrefcount(arr) == before - 1  # dlshare's buffer reference given back, once


def test_tvm_ffi_of_views_and_read_only_tensors(monkeypatch):
    tvm_ffi = pytest.importorskip("tvm_ffi", reason="skipped: apache-tvm-ffi not installed")
    counter = CapsuleCounter(monkeypatch)
    base = np.arange(30, dtype=np.int64).reshape(5, 6)
    for src in (base[::2, 1:], base.T, np.float64(3.5) * np.ones(()), np.zeros((0, 3))):
        t = dlshare.as_tensor(np.asarray(src))
        f = tvm_ffi.from_dlpack(t)
        np.testing.assert_array_equal(np.from_dlpack(f), np.asarray(src))
        del f, t
    ro = np.arange(4.0)
    ro.flags.writeable = False
    t = dlshare.from_numpy(ro, readonly=True)
    f = tvm_ffi.from_dlpack(t)
    np.testing.assert_array_equal(np.from_dlpack(f), ro)
    assert counter.calls == 0
    del f, t


def test_table_functions_directly():
    api = table()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = dlshare.from_numpy(arr)
    # dltensor_from_py_object_no_sync: a non-owning view
    dl = ffi.new("DLTensor *")
    assert api.dltensor_from_py_object_no_sync(ffi.cast("void *", id(t)), dl) == 0
    assert int(ffi.cast("uintptr_t", dl.data)) + dl.byte_offset == arr.ctypes.data
    assert (dl.ndim, dl.shape[0], dl.shape[1], dl.strides[0], dl.strides[1]) == (2, 2, 3, 3, 1)
    # managed_tensor_from_py_object_no_sync, then back with managed_tensor_to_py_object_no_sync
    out = ffi.new("DLManagedTensorVersioned **")
    assert api.managed_tensor_from_py_object_no_sync(ffi.cast("void *", id(t)), out) == 0
    assert out[0].dl_tensor.data == dl.data and out[0].deleter != ffi.NULL
    to_py = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.py_object))(
        int(ffi.cast("uintptr_t", api.managed_tensor_to_py_object_no_sync))
    )
    back = ctypes.py_object()
    assert to_py(int(ffi.cast("uintptr_t", out[0])), ctypes.byref(back)) == 0
    u = back.value
    _capi.Py_DecRef.argtypes = [ctypes.py_object]
    _capi.Py_DecRef(u)  # the new reference the function returned (ctypes does not own it)
    assert isinstance(u, dlshare.Tensor) and u.shared and u.data_ptr == arr.ctypes.data
    np.testing.assert_array_equal(u.numpy(), arr)
    # current_work_stream: NULL for the CPU
    stream = ffi.new("void **")
    assert api.current_work_stream(lib.kDLCPU, 0, stream) == 0 and stream[0] == ffi.NULL
    # managed_tensor_allocator: a new tensor shaped as the prototype
    proto = ffi.new("DLTensor *")
    shape = ffi.new("int64_t[]", [3, 4])
    proto.ndim, proto.shape, proto.dtype = 2, shape, (lib.kDLFloat, 64, 1)
    proto.device = (lib.kDLCPU, 0)
    assert api.managed_tensor_allocator(proto, out, ffi.NULL, ffi.NULL) == 0
    m = out[0]
    assert (m.dl_tensor.ndim, m.dl_tensor.shape[0], m.dl_tensor.shape[1]) == (2, 3, 4)
    assert int(ffi.cast("uintptr_t", m.dl_tensor.data)) % 256 == 0
    m.deleter(m)
    del u, t


def test_table_functions_refuse_what_they_cannot_export():
    fn = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_void_p)(
        int(ffi.cast("uintptr_t", table().managed_tensor_from_py_object_no_sync))
    )
    out = ctypes.c_void_p()
    with pytest.raises(BufferError, match="dlshare.Tensor objects only"):
        fn(np.zeros(3), ctypes.byref(out))
    assert not out.value
    errors = []

    @ffi.callback("void(void *, const char *, const char *)")
    def set_error(ctx, kind, message):
        errors.append((ffi.string(kind).decode(), ffi.string(message).decode()))

    proto = ffi.new("DLTensor *")
    shape = ffi.new("int64_t[]", [2])
    proto.ndim, proto.shape, proto.dtype = 1, shape, (lib.kDLFloat, 32, 1)
    proto.device = (16, 0)  # hexagon: dlshare allocates no such memory
    managed = ffi.new("DLManagedTensorVersioned **")
    assert table().managed_tensor_allocator(proto, managed, ffi.NULL, set_error) == -1
    assert errors and errors[0][0] == "BufferError" and "hexagon" in errors[0][1]


# ---------------------------------------------------------------------------------------------
# malformed tables of other producers (docs/hardening.md, "DLPack C exchange API")


def producer_with(table_object):
    """A DLPack producer type publishing `table_object` as its exchange API."""

    class Producer:
        __dlpack_c_exchange_api__ = table_object

        def __init__(self):
            self.arr = np.arange(3.0)

        def __dlpack__(self, **kwargs):
            return self.arr.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return (1, 0)

    return Producer()


def fake_table(major=1, minor=3, from_py_object=True):
    api = ffi.new("DLPackExchangeAPI *")
    api.header.version.major, api.header.version.minor = major, minor
    if from_py_object:
        api.managed_tensor_from_py_object_no_sync = table().managed_tensor_from_py_object_no_sync
    capsule = _capi.PyCapsule_New(int(ffi.cast("uintptr_t", api)), b"dlpack_exchange_api", None)
    return capsule, api  # the cffi struct must outlive the capsule


@pytest.mark.parametrize("fn", [dlshare.as_tensor, dlshare.tensor, dlshare.from_dlpack])
def test_malformed_exchange_tables_raise_a_clear_error(fn):
    cases = []
    cases.append((object(), dlshare.InvalidDLPackError, "not a PyCapsule named"))
    wrong_name = _capi.PyCapsule_New(id(cases), b"something_else", None)
    cases.append((wrong_name, dlshare.InvalidDLPackError, "not a PyCapsule named"))
    v2, keep2 = fake_table(major=2, minor=0)
    cases.append((v2, dlshare.UnsupportedVersionError, "version 2.0"))
    null_fn, keep_null = fake_table(from_py_object=False)
    cases.append((null_fn, dlshare.InvalidDLPackError, "managed_tensor_from_py_object_no_sync is NULL"))
    for capsule, error, text in cases:
        producer = producer_with(capsule)
        with pytest.raises(error, match=text) as info:
            fn(producer)
        assert "Producer.__dlpack_c_exchange_api__" in str(info.value)
        assert isinstance(info.value, BufferError)
    del keep2, keep_null


def test_a_capsule_cannot_hold_a_null_table():
    # the "NULL table" case of the catalogue: CPython refuses a NULL capsule pointer, and a
    # type without a table (None) is imported through __dlpack__
    with pytest.raises(ValueError):
        _capi.PyCapsule_New(None, b"dlpack_exchange_api", None)
    t = dlshare.as_tensor(producer_with(None))
    np.testing.assert_array_equal(t.numpy(), np.arange(3.0))


def test_subclass_overriding_dlpack_is_not_imported_through_the_exchange_api():
    torch = pytest.importorskip("torch")

    class Doubling(torch.Tensor):
        def __dlpack__(self, *args, **kwargs):
            return (self.as_subclass(torch.Tensor) * 2).__dlpack__(*args, **kwargs)

    x = torch.arange(3.0).as_subclass(Doubling)
    assert _producers.exchange_address(Doubling) is None
    np.testing.assert_array_equal(dlshare.as_tensor(x).numpy(), [0.0, 2.0, 4.0])
