"""The three conversion modes against real NumPy and PyTorch: every case of the decision table
in docs/design.md, with pointer equality where shared, inequality where copied, values equal to
NumPy/PyTorch, and writes visible both ways when shared."""

import numpy as np
import pytest
import torch

import dlshare

BASE = np.arange(24, dtype=np.float64).reshape(4, 6) * 1.5 - 7


def ptr(a) -> int:
    return a.__array_interface__["data"][0]


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def misaligned_f32():
    raw = np.zeros(4 * 10 + 1, dtype=np.uint8)
    a = raw[1:].view(np.float32)
    a[:] = np.arange(10, dtype=np.float32)
    return a


def odd_stride():
    raw = np.arange(40, dtype=np.uint8)
    # byte stride 6 for 4-byte items: not a multiple of the item size
    return np.lib.stride_tricks.as_strided(raw[:4].view(np.int32), shape=(6,), strides=(6,))


# (name, make array, SHARE outcome: None = shares, else the reason of the refusal)
CASES = [
    ("c_order", lambda: BASE.copy(), None),
    ("f_order", lambda: np.asfortranarray(BASE), None),
    ("strided_view", lambda: BASE.copy()[:, ::2], None),
    ("transposed", lambda: BASE.copy().T, None),
    ("float32", lambda: BASE.astype(np.float32), None),
    ("int16", lambda: np.arange(-5, 7, dtype=np.int16).reshape(3, 4), None),
    ("bool", lambda: np.array([True, False, True]), None),
    ("complex128", lambda: (BASE + 2j * BASE).copy(), None),
    ("read_only", lambda: readonly(BASE), "read_only"),
    ("reversed", lambda: BASE.copy()[::-1], "negative_stride"),
    ("reversed_inner", lambda: BASE.copy()[:, ::-1], "negative_stride"),
    ("odd_byte_stride", odd_stride, "stride_not_item_multiple"),
    ("big_endian", lambda: BASE.astype(">f8"), "byte_order"),
    ("big_endian_int", lambda: np.arange(12, dtype=">i4").reshape(3, 4), "byte_order"),
    ("misaligned", misaligned_f32, "misaligned"),
    ("zero_size", lambda: np.zeros((0, 3), dtype=np.float32), None),
    ("zero_d", lambda: np.array(3.25), None),
    ("broadcast", lambda: np.broadcast_to(np.arange(3.0), (4, 3)), "read_only"),
]
IDS = [c[0] for c in CASES]


def expected(a, dtype=None):
    out = np.array(a, dtype=dtype, copy=True, order="C")
    return out.astype(out.dtype.newbyteorder("="))


@pytest.mark.parametrize("name,make,refusal", CASES, ids=IDS)
def test_from_numpy(name, make, refusal):
    a = make()
    if refusal is None:
        t = dlshare.from_numpy(a)
        assert t.shared and t.copy_reason is None
        assert t.data_ptr == ptr(a) or a.size == 0
        np.testing.assert_array_equal(t.numpy(), a)
        assert t.shape == a.shape
        if a.size and a.flags.writeable:
            new = np.logical_not(a.flat[0]) if a.dtype == bool else a.dtype.type(42)
            t.numpy().flat[0] = new  # writes go both ways
            assert a.flat[0] == new
            a.flat[-1] = new
            assert t.numpy().flat[-1] == new
        # torch.from_numpy agrees that this is shareable
        if a.dtype.isnative and a.flags.writeable:
            assert torch.from_numpy(a).data_ptr() == t.data_ptr or a.size == 0
    else:
        with pytest.raises(dlshare.CannotShareError) as info:
            dlshare.from_numpy(a)
        assert info.value.reason == refusal
        assert isinstance(info.value, ValueError) and isinstance(info.value, dlshare.Error)
        assert len(str(info.value)) > 20
        if refusal == "negative_stride":
            with pytest.raises(ValueError):  # PyTorch refuses the same input
                torch.from_numpy(a)


@pytest.mark.parametrize("name,make,refusal", CASES, ids=IDS)
def test_as_tensor(name, make, refusal):
    a = make()
    t = dlshare.as_tensor(a)
    np.testing.assert_array_equal(t.numpy(), expected(a))
    if refusal is None:
        assert t.shared and (t.data_ptr == ptr(a) or a.size == 0)
    else:
        assert not t.shared and t.copy_reason == refusal
        assert t.data_ptr != ptr(a)
        assert t.is_contiguous() and not t.readonly and t.data_ptr % 256 == 0
    if a.dtype.isnative:
        # torch.as_tensor and torch.tensor refuse negative strides (we copy instead)
        ref = torch.tensor(np.ascontiguousarray(a))
        np.testing.assert_array_equal(t.numpy(), ref.numpy())


@pytest.mark.parametrize("name,make,refusal", CASES, ids=IDS)
def test_tensor_always_copies(name, make, refusal):
    a = make()
    t = dlshare.tensor(a)
    assert not t.shared and t.copy_reason == "copy_requested"
    assert t.data_ptr != ptr(a) or a.size == 0
    np.testing.assert_array_equal(t.numpy(), expected(a))
    assert t.is_contiguous() and not t.readonly
    if a.dtype.isnative:
        np.testing.assert_array_equal(t.numpy(), torch.tensor(np.ascontiguousarray(a)).numpy())
    if a.size:
        t.numpy().flat[0] = -99
        assert a.flat[0] != -99


@pytest.mark.parametrize("name,make,refusal", CASES, ids=IDS)
def test_explain_agrees_with_conversion(name, make, refusal):
    a = make()
    e = dlshare.explain(a, mode="from_numpy")
    assert e.shared == (refusal is None) and e.reason == refusal
    e = dlshare.explain(a)
    assert e.shared == dlshare.as_tensor(a).shared
    assert str(e)
    assert dlshare.explain(a, mode="tensor").reason == "copy_requested"


def test_readonly_opt_in_shares_read_only():
    a = readonly(BASE)
    t = dlshare.from_numpy(a, readonly=True)
    assert t.shared and t.readonly and t.data_ptr == ptr(a)
    view = t.numpy()
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1


@pytest.mark.parametrize(
    "src,dst",
    [("float64", "float32"), ("float32", "float16"), ("float32", "bfloat16"), ("int64", "float32"),
     ("float64", "int32"), ("int32", "bool"), ("uint8", "float64"), ("float32", "complex64")],
)
def test_dtype_change_copies_with_cast(src, dst):
    a = (BASE * 3).astype(src)
    with pytest.raises(TypeError):
        dlshare.from_numpy(a, dtype=dst)  # from_numpy has no dtype argument (as in PyTorch)
    t = dlshare.as_tensor(a, dtype=dst)
    assert not t.shared and t.copy_reason == "dtype_change" and t.dtype == dst
    ref = torch.as_tensor(a).to(getattr(torch, dst))
    got = torch.from_dlpack(t)
    assert got.dtype == ref.dtype
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_same_dtype_is_not_a_change():
    a = BASE.copy()
    t = dlshare.as_tensor(a, dtype="float64")
    assert t.shared and t.data_ptr == ptr(a)
    assert dlshare.as_tensor(a, dtype=np.float64).shared
    assert dlshare.as_tensor(a, dtype=torch.float64).shared


def test_device_change_needs_cuda():
    with pytest.raises(dlshare.DeviceUnavailableError):
        dlshare.as_tensor(BASE, device="cuda:0")


def test_unsupported_dtypes():
    for a in [np.array(["a", "b"]), np.array([object()]), np.array([1.0], dtype=np.longdouble),
              np.array(["2020-01-01"], dtype="datetime64[ns]")]:
        for fn in (dlshare.from_numpy, dlshare.as_tensor, dlshare.tensor):
            with pytest.raises(dlshare.UnsupportedDtypeError) as info:
                fn(a)
            assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "obj,dtype",
    [(1.5, "float32"), (3, "int64"), (True, "bool"), (1 + 2j, "complex64"),
     ([[1.0, 2.0], [3.0, 4.0]], "float32"), ([1, 2, 3], "int64"), ([True, False], "bool"),
     ([1, 2.5], "float32")],
)
def test_python_scalars_and_lists_follow_torch_tensor(obj, dtype):
    t = dlshare.as_tensor(obj)
    ref = torch.tensor(obj)
    assert t.dtype == dtype == str(ref.dtype).removeprefix("torch.")
    assert t.copy_reason == "not_an_array" and not t.shared
    np.testing.assert_array_equal(t.numpy(), ref.numpy())
    assert dlshare.explain(obj).reason == "not_an_array"


def test_buffer_protocol_and_array_interface_share():
    b = bytearray(b"\x01\x02\x03\x04")
    t = dlshare.as_tensor(b)
    assert t.shared and t.dtype == "uint8"
    t.numpy()[0] = 9
    assert b[0] == 9

    class Iface:
        def __init__(self, arr):
            self.arr = arr
            self.__array_interface__ = arr.__array_interface__

    a = BASE.copy()
    t = dlshare.as_tensor(Iface(a))
    assert t.shared and t.data_ptr == ptr(a)


def test_tensor_methods():
    a = np.asfortranarray(BASE.astype(np.float32))
    t = dlshare.from_numpy(a)
    assert t.ndim == 2 and t.shape == (4, 6) and t.strides == (1, 4)
    assert t.dtype == "float32" and t.device == "cpu" and t.nbytes == 96
    assert not t.is_contiguous()
    c = t.contiguous()
    assert c.is_contiguous() and not c.shared and c.data_ptr != t.data_ptr
    np.testing.assert_array_equal(c.numpy(), a)
    assert c.contiguous() is c
    same = t.to()
    assert same.shared and same.data_ptr == t.data_ptr
    cl = t.clone()
    assert not cl.shared and cl.copy_reason == "copy_requested"
    h = t.to("float16")
    assert h.dtype == "float16" and h.copy_reason == "dtype_change"
    assert "float32" in repr(t) and "shared" in repr(t)
    assert dlshare.shares_memory(t, a) and not dlshare.shares_memory(cl, a)
