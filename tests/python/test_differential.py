"""Differential test (issue 11): every torch tensor kind through every import path gives the
values the user sees in PyTorch (`t.resolve_conj().resolve_neg().detach()`) or an exception --
never other values ("a silent mismatch"). The paths:

- native: the public functions with the library's CPython fast path (torch tensors enter through
  torch's DLPack C exchange API);
- python: the Python implementation called directly in this process (cffi, and the exchange API
  through ctypes);
- pure: the public functions in a subprocess with DLSHARE_PURE_PYTHON=1 (cffi only);
- dlpack_only: an object that has only `__dlpack__` / `__dlpack_device__` (torch's capsule);
- versioned / legacy: `from_dlpack` of the capsule torch's `__dlpack__` returns with / without
  max_version.

native, python and pure must also agree with each other exactly (same values, sharing and
reason, or the same exception class). The same for NumPy oddities, JAX arrays and pandas
extension arrays, on the native and the Python path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dlshare
from dlshare import _core

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

DTYPES = [
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64", "float16",
    "bfloat16", "float32", "float64", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2",
]


def base(dtype: str, shape=(2, 3)):
    n = int(np.prod(shape)) if shape else 1
    values = torch.arange(n, dtype=torch.float32).reshape(shape) - 2
    if dtype == "bool":
        return (values.to(torch.int64) % 2).to(torch.bool)
    if dtype.startswith("complex"):
        return torch.complex(values, -values).to(getattr(torch, dtype))
    if dtype.startswith("uint"):
        values = values + 2
    return values.to(getattr(torch, dtype))


class Doubling(torch.Tensor):
    """A subclass with its own export: its `__dlpack__` is the producer's rule."""

    def __dlpack__(self, *args, **kwargs):
        return (self.as_subclass(torch.Tensor) * 2).__dlpack__(*args, **kwargs)


class Plain(torch.Tensor):
    """A subclass that keeps torch's export."""


def kinds():
    out = {}
    for d in DTYPES:
        out[f"{d}/contiguous"] = lambda d=d: base(d)
    for d in ("float32", "complex64", "int64", "bfloat16", "bool"):
        out[f"{d}/transposed"] = lambda d=d: base(d).T
        out[f"{d}/expanded"] = lambda d=d: base(d, (1, 3)).expand(4, 3)
        out[f"{d}/0-d"] = lambda d=d: base(d, ())
        out[f"{d}/empty"] = lambda d=d: base(d, (0, 3))
        out[f"{d}/channels_last"] = lambda d=d: base(d, (1, 2, 2, 3)).contiguous(
            memory_format=torch.channels_last)
        out[f"{d}/sliced"] = lambda d=d: base(d, (4, 6))[1:, ::2]
    for d in ("complex64", "complex128"):
        out[f"{d}/conj"] = lambda d=d: base(d).conj()
        out[f"{d}/conj_transposed"] = lambda d=d: base(d).conj().T
        out[f"{d}/conj_detached"] = lambda d=d: base(d).conj().detach()
        out[f"{d}/conj_neg"] = lambda d=d: torch._neg_view(base(d).conj())
        out[f"{d}/conj_requires_grad"] = lambda d=d: base(d).requires_grad_().conj()
    for d in ("float32", "float64", "int32"):
        out[f"{d}/neg_view"] = lambda d=d: torch._neg_view(base(d))
    out["float32/neg_from_conj_imag"] = lambda: base("complex64").conj().imag
    out["float32/neg_detached"] = lambda: torch._neg_view(base("float32")).detach()
    out["float32/requires_grad"] = lambda: base("float32").requires_grad_()
    out["float32/requires_grad_nonleaf"] = lambda: base("float32").requires_grad_() * 2
    out["float32/requires_grad_view"] = lambda: base("float32").requires_grad_()[1:]
    out["float32/parameter"] = lambda: torch.nn.Parameter(base("float32"))
    out["float32/sparse_coo"] = lambda: base("float32").to_sparse()
    out["float32/sparse_csr"] = lambda: base("float32").to_sparse_csr()
    out["float32/sparse_csc"] = lambda: base("float32").to_sparse_csc()
    out["float32/sparse_bsr"] = lambda: base("float32", (2, 2)).to_sparse_bsr((1, 1))
    out["float32/sparse_bsc"] = lambda: base("float32", (2, 2)).to_sparse_bsc((1, 1))
    out["float32/mkldnn"] = lambda: base("float32").to_mkldnn()
    out["quint8/quantized"] = lambda: torch.quantize_per_tensor(base("float32"), 0.5, 8, torch.quint8)
    out["float32/nested"] = lambda: torch.nested.nested_tensor([base("float32", (2,)), base("float32", (3,))])
    out["float32/meta"] = lambda: torch.empty(2, 3, device="meta")
    out["float32/subclass"] = lambda: base("float32").as_subclass(Plain)
    out["float32/subclass_own_dlpack"] = lambda: base("float32").as_subclass(Doubling)
    return out


KINDS = kinds()


def reference(t):
    """What the user sees in PyTorch (None when there is no strided value to compare)."""
    if isinstance(t, Doubling):
        return t.as_subclass(torch.Tensor).detach() * 2
    if t.layout != torch.strided or t.is_quantized or t.is_meta or t.is_nested:
        return None
    return t.resolve_conj().resolve_neg().detach().as_subclass(torch.Tensor)


def digest(x) -> str:
    flat = x.detach().reshape(-1).contiguous()
    raw = flat.view(torch.uint8) if flat.numel() else torch.zeros(0, dtype=torch.uint8)
    return hashlib.sha1(raw.numpy().tobytes()).hexdigest()


class OnlyDlpack:
    def __init__(self, t):
        self.t = t

    def __dlpack__(self, **kwargs):
        return self.t.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


def run(fn, t):
    """(outcome, silent_mismatch): the outcome as plain values, comparable across processes."""
    ref = reference(t)
    producer_ptr = t.data_ptr() if (t.layout == torch.strided and not t.is_meta
                                    and not t.is_quantized and not t.is_nested) else None
    try:
        r = fn(t)
    except Exception as exc:
        return ["raised", type(exc).__name__, isinstance(exc, dlshare.Error),
                isinstance(exc, BufferError)], False
    got = torch.from_dlpack(r)
    mismatch = (
        ref is None
        or got.dtype != ref.dtype
        or tuple(got.shape) != tuple(ref.shape)
        or digest(got) != digest(ref)
    )
    # "shared" is said only of the producer's own memory, with nothing lazy and no autograd
    # (a subclass with its own __dlpack__ exports what it likes: its capsule is the producer)
    if r.shared and got.numel() and not isinstance(t, Doubling):
        mismatch |= (
            r.data_ptr != got.data_ptr()
            or producer_ptr is None
            or not (producer_ptr <= r.data_ptr < producer_ptr + max(1, t.untyped_storage().nbytes()))
            or t.is_conj() or t.is_neg() or t.requires_grad
        )
    out = ["tensor", str(got.dtype), list(got.shape), bool(r.shared), r.copy_reason,
           digest(got)]
    del got, r
    return out, mismatch


MODES = {
    "as_tensor": (lambda t: dlshare.as_tensor(t), lambda t: _core._as_tensor_py(t)),
    "tensor": (lambda t: dlshare.tensor(t), lambda t: _core.tensor(t)),
    "from_dlpack": (lambda t: dlshare.from_dlpack(t), lambda t: _core.from_dlpack(t)),
    "from_dlpack_copy_false": (lambda t: dlshare.from_dlpack(t, copy=False),
                               lambda t: _core.from_dlpack(t, copy=False)),
}
OTHER_PATHS = {
    "dlpack_only": lambda t: dlshare.as_tensor(OnlyDlpack(t)),
    "versioned": lambda t: dlshare.from_dlpack(t.__dlpack__(max_version=(1, 0))),
    "legacy": lambda t: dlshare.from_dlpack(t.__dlpack__()),
}


def matrix(native: bool) -> dict:
    """{kind: {path/mode: (outcome, mismatch)}} for the public functions (`native` False: the
    Python implementation, unless this is the pure subprocess, where both are cffi)."""
    results = {}
    for name, make in KINDS.items():
        row = {}
        for mode, (public, python) in MODES.items():
            row[mode] = run(public if native else python, make())
        results[name] = row
    return results


def pure_matrix() -> dict:
    env = dict(os.environ, DLSHARE_PURE_PYTHON="1")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_differential as m; "
        "import dlshare._core as c; assert c._native is None; "
        "print(json.dumps(m.matrix(True)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__)], env=env, capture_output=True,
        text=True, timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def native_results():
    return json.loads(json.dumps(matrix(True)))  # lists, as the subprocess's JSON gives


def test_every_kind_on_the_native_path_gives_the_right_values_or_an_error(native_results):
    if _core._native is None:
        pytest.skip("skipped: the native fast path is not usable here")
    bad = [(k, m, o) for k, row in native_results.items() for m, (o, mis) in row.items() if mis]
    assert bad == [], f"{len(bad)} silent mismatches"


def test_the_python_implementation_agrees_with_the_native_path(native_results):
    python = json.loads(json.dumps(matrix(False)))
    bad = [(k, m, o) for k, row in python.items() for m, (o, mis) in row.items() if mis]
    assert bad == [], f"{len(bad)} silent mismatches on the Python path"
    assert python == native_results


def test_the_cffi_only_package_agrees_with_the_native_path(native_results):
    pure = pure_matrix()
    bad = [(k, m, o) for k, row in pure.items() for m, (o, mis) in row.items() if mis]
    assert bad == [], f"{len(bad)} silent mismatches on the cffi-only path"
    assert pure == native_results


def test_refusals_are_buffer_errors_and_dlshare_errors(native_results):
    for kind, row in native_results.items():
        for mode, (outcome, _) in row.items():
            if outcome[0] == "raised":
                assert outcome[2] and outcome[3], (kind, mode, outcome)
    # what PyTorch refuses to export is never shared under copy=False
    for kind in ("complex64/conj", "float32/neg_from_conj_imag", "float32/requires_grad"):
        assert native_results[kind]["from_dlpack_copy_false"][0][:2] == ["raised", "CannotShareError"]


def test_other_paths_never_give_wrong_values():
    """Through a capsule dlshare sees only what the producer's `__dlpack__` wrote. PyTorch 2.15's
    `__dlpack__` refuses conjugate views and tensors that require grad, but exports tensors with
    the negative bit as their raw memory (the other sign): a defect of the producer that no
    consumer can see in the capsule (`np.from_dlpack` and `torch.from_dlpack` of the capsule read
    the same wrong values). Those cases are listed and must match NumPy's reading; everything
    else must be right."""
    bad, producer_defects = [], []
    for name, make in KINDS.items():
        for path, fn in OTHER_PATHS.items():
            t = make()
            if name.endswith("subclass_own_dlpack") and path != "dlpack_only":
                continue  # the raw capsule of the subclass is its own export
            outcome, mismatch = run(fn, t)
            if mismatch and t.is_neg() and not t.requires_grad:
                peer = torch.from_numpy(np.from_dlpack(t).copy())
                assert outcome[5] == digest(peer), (name, path)  # what NumPy reads, too
                producer_defects.append(name)
            elif mismatch:
                bad.append((name, path, outcome))
    assert bad == [], f"{len(bad)} silent mismatches"
    assert set(producer_defects) <= {k for k in KINDS if "neg" in k}


def test_shared_means_shared_and_lazy_views_are_resolved(native_results):
    row = native_results["float32/contiguous"]["as_tensor"][0]
    assert row[3] is True and row[4] is None
    assert native_results["complex64/conj"]["as_tensor"][0][3:5] == [False, "lazy_conjugate"]
    assert native_results["float32/neg_view"]["as_tensor"][0][3:5] == [False, "lazy_negative"]
    assert native_results["float32/requires_grad"]["as_tensor"][0][3:5] == [False, "requires_grad"]
    assert native_results["complex64/conj"]["tensor"][0][3:5] == [False, "copy_requested"]
    x = base("float32").requires_grad_()
    t = dlshare.as_tensor(x)
    np.from_dlpack(t)[0, 0] = 100.0  # a copy: the leaf is untouched
    assert x[0, 0].item() == -2.0


# ---------------------------------------------------------------------------------------------
# NumPy oddities, JAX, pandas


def numpy_kinds():
    mm_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dlshare_diff_{os.getpid()}.bin")
    return {
        "structured": lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]),
        "masked": lambda: np.ma.array([1.0, 2.0], mask=[False, True]),
        "matrix": lambda: np.matrix([[1.0, 2.0], [3.0, 4.0]]),
        "memmap": lambda: np.memmap(mm_path, dtype=np.float32, mode="w+", shape=(4,)),
        "recarray": lambda: np.eye(2).view(np.recarray),
        "object": lambda: np.array([object(), 1], dtype=object),
        "reversed": lambda: np.arange(5.0)[::-1],
        "big_endian": lambda: np.arange(4, dtype=">i4"),
        "read_only": lambda: np.frombuffer(b"\x00" * 16, dtype=np.float32),
    }


def np_outcome(fn, a):
    try:
        t = fn(a)
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    values = np.asarray(t)
    return ("tensor", t.shared, t.copy_reason, values.dtype.str, values.tobytes(),
            values.shape)


@pytest.mark.parametrize("name", list(numpy_kinds()))
def test_numpy_oddities_same_on_both_paths_and_right_values(name):
    make = numpy_kinds()[name]
    a = make()
    native = np_outcome(dlshare.as_tensor, a)
    python = np_outcome(_core._as_tensor_py, make())
    assert native == python
    if native[0] == "tensor":
        expected = np.asarray(np.ma.getdata(a))
        assert native[4] == np.ascontiguousarray(expected.astype(expected.dtype.newbyteorder("="))).tobytes()
    else:
        assert name in ("structured", "masked", "object")
        assert any(word in native[2] for word in ("mask", "object", "typestr", "dtype"))


def test_jax_arrays_are_imported_read_only():
    jnp = pytest.importorskip("jax.numpy", reason="skipped: jax not installed")
    x = jnp.arange(4.0)
    for fn in (dlshare.as_tensor, _core._as_tensor_py):
        t = fn(x)
        assert not t.shared and t.copy_reason == "read_only"  # the conversion table's rule
        np.from_dlpack(t)[0] = 42.0  # a copy: x is untouched
    s = dlshare.from_dlpack(x)
    assert s.shared and s.readonly  # as NumPy's from_dlpack: shared, read-only
    with pytest.raises(ValueError):
        np.from_dlpack(s)[0] = 42.0
    with pytest.raises(dlshare.CannotShareError) as info:
        dlshare.from_numpy(np.asarray(x))
    assert info.value.reason == "read_only"
    np.testing.assert_array_equal(np.asarray(x), [0.0, 1.0, 2.0, 3.0])


PANDAS_CASES = [
    ("Int64_na", lambda pd: pd.Series([1, None, 3], dtype="Int64", name="n")),
    ("Float64_na", lambda pd: pd.Series([1.5, None], dtype="Float64", name="f")),
    ("boolean_na", lambda pd: pd.Series([True, None], dtype="boolean", name="flag")),
    ("Int64", lambda pd: pd.Series([1, 2, 3], dtype="Int64")),
    ("float64", lambda pd: pd.Series([1.0, 2.0])),
    ("category", lambda pd: pd.Series(["a", "b"], dtype="category", name="c")),
    ("arrow_int64", lambda pd: pd.Series([1, 2, None], dtype="int64[pyarrow]", name="a")),
]


@pytest.mark.parametrize("name,make", PANDAS_CASES, ids=[c[0] for c in PANDAS_CASES])
def test_pandas_extension_arrays(name, make):
    pd = pytest.importorskip("pandas")
    if "arrow" in name:
        pytest.importorskip("pyarrow", reason="skipped: pyarrow not installed")
    s = make(pd)
    native = np_outcome(dlshare.as_tensor, s)
    python = np_outcome(_core._as_tensor_py, make(pd))
    assert native == python
    if native[0] == "raised":  # a clear error naming the column and the dtype
        assert str(s.dtype) in native[2] and "fill" in native[2]
        return
    expected = np.asarray(s)
    assert native[4] == expected.tobytes()
    if native[1]:  # shared: writes reach the pandas object
        t = dlshare.as_tensor(s)
        np.from_dlpack(t)[0] = 100
        assert s.iloc[0] == 100
    elif s.hasnans if hasattr(s, "hasnans") else False:
        assert native[2] == "producer_copy"


def test_the_issues_pandas_reproduction_reports_a_copy():
    pd = pytest.importorskip("pandas")
    s = pd.Series([1, None, 3], dtype="Int64")
    u = dlshare.as_tensor(s)
    assert not u.shared and u.copy_reason == "producer_copy"
    with pytest.raises(dlshare.CannotShareError) as info:
        _core._convert(s, _core.SHARE, None, None, False)
    assert info.value.reason == "producer_copy" and isinstance(info.value, BufferError)
    assert dlshare.explain(s).reason == "producer_copy"


def test_custom_array_objects():
    class Fresh:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3.0)  # new memory every call

    keep = np.arange(3.0)

    class Owner:
        def __array__(self, dtype=None, copy=None):
            return keep  # its own memory

    class Legacy:
        def __array__(self, dtype=None):  # no copy= keyword: NumPy 2 cannot ask for no copy
            return np.arange(3.0)

    for fn in (dlshare.as_tensor, _core._as_tensor_py):
        assert fn(Fresh()).copy_reason == "producer_copy"
        t = fn(Owner())
        assert t.shared and t.data_ptr == keep.ctypes.data
        assert fn(Legacy()).copy_reason == "producer_copy"
        del t
