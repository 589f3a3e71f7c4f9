"""The library's CPython fast path (src/ffi/pyext.rs, loaded by dlshare/_native.py) against the
pure-Python implementation it stands in for: for every case the native callables and the Python
functions give the same outcome (shared or copied, reason, values, data pointers, read-only
flag) or raise the same exception with the same message. The rest of the suite runs once with the
fast path and once without it (DLSHARE_PURE_PYTHON=1, see scripts/test.sh)."""

import gc
import os
import sys
import threading
import weakref

import numpy as np
import pytest
import torch

import dlshare
from dlshare import _core

from test_conversions import CASES, IDS

NATIVE = _core._native is not None


def test_the_fast_path_is_used_on_cpython_unless_switched_off():
    expected = (sys.implementation.name == "cpython" and sys.version_info >= (3, 11)
                and not os.environ.get("DLSHARE_PURE_PYTHON"))
    assert NATIVE == expected
    kind = type(dlshare.from_numpy).__name__
    assert kind == ("builtin_function_or_method" if NATIVE else "function")


def outcome(fn, *args, **kwargs):
    """What a conversion did, comparable across implementations."""
    try:
        t = fn(*args, **kwargs)
    except Exception as exc:  # the same exception, same reason, same message
        return ("raised", type(exc), getattr(exc, "reason", None), str(exc))
    arr = t.numpy() if t.dtype != "bfloat16" else None
    # strides of a zero-size tensor are arbitrary (NumPy's DLPack export, which the pure path
    # uses, gives zeros; the fast path keeps NumPy's strides, as torch.from_numpy does)
    strides = t.strides if 0 not in t.shape else None
    result = (
        "tensor", t.shape, strides, t.dtype, t.device, t.shared, t.copy_reason, t.readonly,
        t.data_ptr if t.shared else None, None if arr is None else arr.tobytes(), t.__dlpack_device__(),
    )
    del arr, t
    return result


def extra_cases():
    big = np.arange(1 << 15, dtype=np.float64)  # above the size where the GIL is let go
    return [
        ("big_copy", lambda: big[::-1]),
        ("big_shared", lambda: big),
        ("float16", lambda: np.arange(6, dtype=np.float16)),
        ("uint64", lambda: np.arange(6, dtype=np.uint64)),
        ("longlong", lambda: np.arange(6, dtype=np.longlong)),
        ("complex64", lambda: np.arange(6, dtype=np.complex64)),
        ("subclass", lambda: np.eye(2).view(np.recarray)),
        ("object", lambda: np.array([object(), 1], dtype=object)),
        ("datetime", lambda: np.array(["2024-01-01"], dtype="datetime64[D]")),
        ("structured", lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
        ("longdouble", lambda: np.zeros(3, dtype=np.longdouble)),
        ("byte_swapped_f16", lambda: np.arange(4, dtype=">f2")),
    ]


ALL = [(name, make) for name, make, _ in CASES] + extra_cases()
ALL_IDS = IDS + [name for name, _ in extra_cases()]


@pytest.mark.parametrize("name,make", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"readonly": True}, {"readonly": False}])
def test_from_numpy_matches_the_python_implementation(name, make, kwargs):
    a = make()
    assert outcome(dlshare.from_numpy, a, **kwargs) == outcome(_core._from_numpy_py, a, **kwargs)


@pytest.mark.parametrize("name,make", ALL, ids=ALL_IDS)
@pytest.mark.parametrize(
    "args,kwargs",
    [((), {}), ((None,), {}), ((None, None), {}), ((), {"dtype": None, "device": None}),
     ((), {"stream": None}), (("float32",), {}), ((), {"dtype": "float64"}),
     ((), {"device": "cpu"})],
    ids=["plain", "dtype_none", "both_none", "kw_none", "stream_none", "dtype_pos", "dtype_kw",
         "device"],
)
def test_as_tensor_matches_the_python_implementation(name, make, args, kwargs):
    a = make()
    assert outcome(dlshare.as_tensor, a, *args, **kwargs) == outcome(
        _core._as_tensor_py, a, *args, **kwargs
    )


TORCH_CASES = [
    ("contiguous", lambda: torch.arange(12.0).reshape(3, 4)),
    ("transposed", lambda: torch.arange(12.0).reshape(3, 4).T),
    ("sliced", lambda: torch.arange(24, dtype=torch.int32).reshape(4, 6)[1:, ::2]),
    ("bfloat16", lambda: torch.arange(6, dtype=torch.bfloat16)),
    ("bool", lambda: torch.tensor([True, False])),
    ("requires_grad", lambda: torch.ones(3, requires_grad=True)),
    ("conj", lambda: torch.tensor([1 + 2j, 3 - 4j]).conj()),
    ("neg", lambda: torch.tensor([1 + 2j, 3 - 4j]).conj().imag),
    ("sparse", lambda: torch.eye(2).to_sparse()),
    ("zero_d", lambda: torch.tensor(2.5)),
    ("empty", lambda: torch.zeros(0, 4)),
    ("big", lambda: torch.arange(1 << 15, dtype=torch.float64)),
]


@pytest.mark.parametrize("name,make", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
@pytest.mark.parametrize("dtype", [None, "float64"])
def test_as_tensor_of_torch_matches_the_python_implementation(name, make, dtype):
    x = make()
    native = outcome(dlshare.as_tensor, x, dtype)
    python = outcome(_core._as_tensor_py, x, dtype)
    assert native == python
    if native[0] == "tensor" and dtype is None and x.numel():
        # PyTorch's rules (issue 11): never shared behind autograd's back, and lazy views are
        # resolved into a copy
        rule = "requires_grad" if x.requires_grad else (
            "lazy_conjugate" if x.is_conj() else "lazy_negative" if x.is_neg() else None)
        if rule:
            assert native[8] is None and native[6] == rule
        else:
            assert native[8] == x.data_ptr()  # shared (through the C exchange API when native)


def test_wrong_calls_raise_what_python_raises():
    for fn, py in ((dlshare.from_numpy, _core._from_numpy_py),
                   (dlshare.as_tensor, _core._as_tensor_py)):
        for args, kwargs in (((), {}), ((np.zeros(2),), {"bogus": 1}),
                             ((np.zeros(2), 1, 2, 3, 4), {})):
            with pytest.raises(TypeError) as native:
                fn(*args, **kwargs)
            with pytest.raises(TypeError) as python:
                py(*args, **kwargs)
            assert str(native.value) == str(python.value)
    assert outcome(dlshare.from_numpy, [1, 2]) == outcome(_core._from_numpy_py, [1, 2])
    assert outcome(dlshare.as_tensor, [1, 2]) == outcome(_core._as_tensor_py, [1, 2])
    assert dlshare.as_tensor([1.5]).copy_reason == "not_an_array"


DLPACK_CALLS = [
    ({}, "dltensor"),
    ({"max_version": None}, "dltensor"),
    ({"max_version": (0, 8)}, "dltensor"),
    ({"max_version": (1, 0)}, "dltensor_versioned"),
    ({"max_version": (1, 3), "stream": None, "dl_device": None, "copy": None}, "dltensor_versioned"),
    ({"max_version": (1, 0), "copy": False}, "dltensor_versioned"),
    ({"max_version": (1, 0), "copy": True}, "dltensor_versioned"),
    ({"max_version": (1, 0), "dl_device": (1, 0)}, "dltensor_versioned"),
    ({"max_version": [1, 0]}, "dltensor_versioned"),
]


def capsule_name(capsule) -> str:
    return repr(capsule).split('"')[1]


@pytest.mark.parametrize("kwargs,name", DLPACK_CALLS, ids=[str(k) for k, _ in DLPACK_CALLS])
@pytest.mark.parametrize("readonly", [False, True])
def test_dlpack_export_matches_the_python_method(kwargs, name, readonly):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    a.flags.writeable = not readonly
    t = dlshare.from_numpy(a, readonly=True)
    for method in (t.__dlpack__, lambda **k: _core.Tensor._dlpack(t, **k)):
        if readonly and name == "dltensor":
            with pytest.raises(BufferError, match="read-only"):
                method(**kwargs)
            continue
        capsule = method(**kwargs)
        assert capsule_name(capsule) == name
        back = dlshare.from_dlpack(capsule)
        assert capsule_name(capsule) == "used_" + name
        np.testing.assert_array_equal(back.numpy(), a)
        copied = kwargs.get("copy") is True
        assert back.readonly == (readonly and not copied)  # a copy is the consumer's, writable
        assert (back.data_ptr == t.data_ptr) == (not copied)
        del back, capsule


def test_dlpack_export_errors_match_the_python_method():
    t = dlshare.from_numpy(np.zeros(3))
    for call in (lambda m: m(1), lambda m: m(stream=5), lambda m: m(max_version="x"),
                 lambda m: m(max_version=(1, 0), copy=False, dl_device=(2, 0)),
                 lambda m: m(bogus=1)):
        errors = []
        for method in (t.__dlpack__, lambda *a, **k: _core.Tensor._dlpack(t, *a, **k)):
            with pytest.raises(Exception) as info:
                call(method)
            errors.append((type(info.value), str(info.value)))
        assert errors[0] == errors[1]


def test_unconsumed_capsules_and_dropped_tensors_free_everything():
    gc.collect()
    start = dlshare.live_tensor_count()
    a = np.ones(1000)
    tensors = [dlshare.from_numpy(a) for _ in range(50)]
    capsules = [t.__dlpack__(max_version=(1, 0)) for t in tensors]
    capsules += [t.__dlpack__() for t in tensors]
    assert dlshare.live_tensor_count() == start + 50  # each import is one storage
    del tensors
    assert dlshare.live_tensor_count() == start + 50  # the capsules keep the memory
    del capsules
    gc.collect()
    assert dlshare.live_tensor_count() == start


def test_handles_without_a_tensor_behind_them_fail_cleanly():
    t = object.__new__(dlshare.Tensor)  # never filled in: no handle
    with pytest.raises(dlshare.InvalidHandleError):
        t.shape
    with pytest.raises(dlshare.InvalidHandleError):
        t.__dlpack__(max_version=(1, 0))
    assert t.copy_reason is None
    del t
    with pytest.raises(TypeError):
        dlshare.Tensor()


def test_tensors_can_be_made_and_dropped_from_many_threads():
    a = np.arange(1 << 14, dtype=np.float32)
    x = torch.arange(100.0)
    errors = []

    def work():
        try:
            for i in range(300):
                t = dlshare.from_numpy(a) if i % 3 == 0 else dlshare.as_tensor(
                    a[::-1] if i % 3 == 1 else x)
                assert t.shape in ((1 << 14,), (100,))
                y = torch.from_dlpack(t)
                del t
                assert y.shape[0] in (1 << 14, 100)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_the_array_lives_until_the_last_tensor_sharing_it_goes():
    a = np.arange(5.0)
    alive = weakref.ref(a)
    t = dlshare.from_numpy(a)
    y = torch.from_dlpack(t)
    del a, t
    gc.collect()
    assert alive() is not None
    y[0] = 42.0
    del y
    gc.collect()
    assert alive() is None


def test_the_buffer_cache_and_thread_cap_are_settable_from_python():
    try:
        dlshare.set_cache_limit(0)
        assert dlshare.cached_bytes() == 0 and dlshare.cache_limit() == 0
        dlshare.set_cache_limit(128 << 20)
        a = np.zeros((1 << 20, 8))  # 64 MiB of float64 -> a 32 MiB float32 copy
        t = dlshare.as_tensor(a, dtype="float32")
        first = t.data_ptr
        del t
        assert dlshare.cached_bytes() == 32 << 20
        t = dlshare.as_tensor(a, dtype="float32")
        assert t.data_ptr == first  # the freed buffer came back
        np.testing.assert_array_equal(t.numpy(), a.astype(np.float32))
        del t
        with pytest.raises(dlshare.InvalidArgumentError, match="-1 for the default"):
            dlshare.set_cache_limit(-5)
        dlshare.set_num_threads(1)
        assert dlshare.get_num_threads() == 1
        with pytest.raises(dlshare.InvalidArgumentError):
            dlshare.set_num_threads(-1)
    finally:
        dlshare.set_cache_limit(None)
        dlshare.set_num_threads(None)
    assert dlshare.cache_limit() == 256 << 20
    assert dlshare.get_num_threads() >= 1
