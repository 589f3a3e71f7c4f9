"""A live tour of dlshare: every flow of the NumPy/PyTorch/pandas interop guide, showing for
each conversion whether it shared or copied, why, and the data pointers.

Run: python3 examples/tour.py  (scripts/demo.sh installs everything and runs it)."""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pandas as pd
import torch

import dlshare

W = 34  # label column width


def ptr(obj) -> int:
    if isinstance(obj, dlshare.Tensor):
        return obj.data_ptr
    if isinstance(obj, torch.Tensor):
        return obj.data_ptr()
    if hasattr(obj, "unsafe_buffer_pointer"):
        return obj.unsafe_buffer_pointer()
    return np.asarray(obj).__array_interface__["data"][0]


def heading(text: str) -> None:
    print(f"\n== {text}")


def outcome(label: str, source, make) -> dlshare.Tensor | None:
    """Runs one conversion and prints shared/copied, the reason and both pointers."""
    try:
        t = make()
    except dlshare.Error as exc:
        reason = getattr(exc, "reason", None) or exc.status
        print(f"  {label:<{W}} REFUSED  {reason:<24} {type(exc).__name__}")
        return None
    src = f"{ptr(source):#x}" if source is not None else "-"
    how = "shared" if t.shared else "copied"
    why = t.copy_reason or ""
    same = "same memory" if source is not None and t.data_ptr == ptr(source) else "new memory"
    print(f"  {label:<{W}} {how:<8} {why:<24} src {src:>16}  tensor {t.data_ptr:#x}  ({same})")
    return t


def numpy_flows() -> None:
    heading("NumPy -> tensor, three modes (from_numpy = share or fail, as_tensor = share if "
            "possible, tensor = always copy)")
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    ro = base.copy()
    ro.flags.writeable = False
    cases = {
        "C order": base,
        "Fortran order": np.asfortranarray(base),
        "strided view a[:, ::2]": base[:, ::2],
        "read-only": ro,
        "reversed a[::-1]": base[::-1],
        "byte-swapped '>f8'": base.astype(">f8"),
    }
    for name, arr in cases.items():
        print(f"  -- {name}: {dlshare.explain(arr, mode='from_numpy')}")
        outcome("from_numpy", arr, lambda: dlshare.from_numpy(arr))
        outcome("as_tensor", arr, lambda: dlshare.as_tensor(arr))
        outcome("tensor", arr, lambda: dlshare.tensor(arr))
    print("  -- float64 -> float32")
    t = outcome("as_tensor(a, dtype='float32')", base, lambda: dlshare.as_tensor(base, "float32"))
    print(f"  {'values':<{W}} {t.numpy().ravel()[:6]} ... dtype {t.dtype}")
    print("  -- shared memory means shared writes (the guide's pitfall 1)")
    a = np.array([1.0, 2.0, 3.0])
    t = dlshare.from_numpy(a)
    a[0] = 0
    print(f"  {'a[0] = 0; tensor sees':<{W}} {t.numpy()}")


def torch_and_jax_flows() -> None:
    heading("PyTorch and JAX round trips over DLPack")
    a = np.arange(6, dtype=np.float32)
    t = dlshare.from_numpy(a)
    x = torch.from_dlpack(t)
    print(f"  {'torch.from_dlpack(tensor)':<{W}} {'shared' if x.data_ptr() == a.ctypes.data else 'COPIED'}"
          f"   ptr {x.data_ptr():#x} == numpy {a.ctypes.data:#x}")
    x[0] = 100
    print(f"  {'torch writes x[0] = 100; numpy':<{W}} {a}")
    y = torch.arange(4.0)
    outcome("as_tensor(torch tensor)", y, lambda: dlshare.as_tensor(y))
    outcome("as_tensor(torch, dtype=float16)", y, lambda: dlshare.as_tensor(y, dtype=torch.float16))
    try:
        import jax.numpy as jnp
    except ImportError:
        print(f"  {'JAX':<{W}} skipped: jax not installed")
        return
    aligned = dlshare.tensor(np.arange(8, dtype=np.float32))
    j = jnp.from_dlpack(aligned)
    print(f"  {'jax.numpy.from_dlpack(tensor)':<{W}} "
          f"{'shared' if j.unsafe_buffer_pointer() == aligned.data_ptr else 'COPIED'}"
          f"   (our copies are 256-byte aligned: {aligned.data_ptr % 256 == 0})")
    jx = jnp.arange(5.0)
    outcome("from_dlpack(jax array)", jx, lambda: dlshare.from_dlpack(jx))


def pandas_flows() -> None:
    heading("pandas -> tensor (one fused pass in the library)")
    df = pd.DataFrame({
        "close": [100.0, np.nan, 99.8, 102.3, 103.1],
        "volume": [1000, 1200, 800, 1500, 1100],
        "sector": pd.Categorical(["tech", "bank", "tech", np.nan, "bank"]),
        "name": ["a", "b", "c", "d", "e"],
    }, index=pd.date_range("2023-01-01", periods=5, freq="D"))
    print(df.to_string(max_cols=6).replace("\n", "\n  ").join(["  ", ""]))
    for kwargs in ({"nan": "zero"}, {"nan": "ffill_bfill", "normalize": "minmax"},
                   {"columns": ["close", "volume", "sector"], "nan": "mean", "categorical": "onehot",
                    "index": True, "datetime": "days"}):
        t = dlshare.from_dataframe(df, **kwargs)
        meta = t.meta or {}
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        print(f"  from_dataframe({args})")
        print(f"    shape {t.shape} dtype {t.dtype}  columns {meta.get('columns')}  "
              f"skipped {meta.get('skipped')}")
        print("    " + np.array2string(t.numpy(), precision=2, suppress_small=True)
              .replace("\n", "\n    "))
    try:
        dlshare.from_dataframe(df)
    except ValueError as exc:
        label = "nan='raise' (default) refuses"
        print(f"  {label:<{W}} {exc}")
    heading("sliding windows (zero-copy view; horizon=1 gives the guide's create_sequences)")
    series = dlshare.tensor(np.arange(10, dtype=np.float32).reshape(10, 1))
    w = dlshare.sliding_windows(series, length=4, step=2, horizon=1)
    print(f"  {'windows shape':<{W}} {w.shape}  strides {w.strides}  shared {w.shared}")
    print(f"  {'first window starts at':<{W}} {w.data_ptr:#x} (the series' own memory: "
          f"{w.data_ptr == series.data_ptr})")
    print("    " + np.array2string(w.numpy()[:, :, 0]).replace("\n", "\n    "))


def c_side_check() -> None:
    heading("C side: the library reads the very bytes NumPy wrote")
    lib = ctypes.CDLL(dlshare.LIBRARY_PATH)
    libc = ctypes.CDLL(None)
    a = np.linspace(0, 1, 8, dtype=np.float32)
    t = dlshare.from_numpy(a)
    data = ctypes.c_void_p()
    lib.dlshare_tensor_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    handle = ctypes.c_void_p(int(dlshare.ffi.cast("uintptr_t", t._handle)))
    status = lib.dlshare_tensor_data(handle, ctypes.byref(data))
    libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    same = libc.memcmp(data, a.ctypes.data, a.nbytes) == 0
    print(f"  {'dlshare_tensor_data (via ctypes)':<{W}} status {status}, {data.value:#x} == "
          f"numpy {a.ctypes.data:#x}: {data.value == a.ctypes.data}; memcmp equal: {same}")


def main() -> None:
    print(f"dlshare {dlshare.__version__} — library {dlshare.LIBRARY_PATH}")
    fast = dlshare._core._native is not None
    print("calls: " + ("the library's native CPython fast path (from_numpy, as_tensor, __dlpack__)"
                       if fast else "cffi alone (no native fast path in this interpreter)"))
    start = dlshare.live_tensor_count()
    numpy_flows()
    torch_and_jax_flows()
    pandas_flows()
    c_side_check()
    gc.collect()
    print(f"\nlive tensor storages: {dlshare.live_tensor_count()} (started with {start})")


if __name__ == "__main__":
    main()
