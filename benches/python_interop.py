"""Per-call and bulk costs of the Python binding next to PyTorch/NumPy, in one process run.
A benchmark, not a test: it prints figures and ratios (ours / theirs, lower is better for
times) with the target from issue #3.

Run: python3 benches/python_interop.py   (after scripts/setup.sh installed the package)"""

from __future__ import annotations

import gc
import os
import platform
import timeit

import numpy as np
import pandas as pd
import torch

import dlshare


def per_call_us(fn, number: int = 20000, repeat: int = 7) -> float:
    """Best-of-`repeat` mean time of one call, in microseconds (result freed each time)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def bulk_s(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = timeit.default_timer()
        out = fn()
        best = min(best, timeit.default_timer() - t0)
        del out
    return best


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"dlshare {dlshare.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
          f"pandas {pd.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} cores")
    rows = []

    a = np.zeros((16, 16), dtype=np.float32)
    ours = per_call_us(lambda: dlshare.from_numpy(a))
    theirs = per_call_us(lambda: torch.from_numpy(a))
    rows.append(("from_numpy(16x16 f32)", "torch.from_numpy", ours, theirs, "us", "<= 1.5x", ours / theirs <= 1.5))

    t = dlshare.from_numpy(a)
    ours = per_call_us(lambda: torch.from_dlpack(t))
    theirs = per_call_us(lambda: torch.from_dlpack(a))
    rows.append(("torch.from_dlpack(our tensor)", "torch.from_dlpack(ndarray)", ours, theirs, "us", "<= 1.2x", ours / theirs <= 1.2))

    x = torch.zeros(16, 16)
    ours = per_call_us(lambda: dlshare.as_tensor(x))
    theirs = per_call_us(lambda: np.from_dlpack(x))
    rows.append(("as_tensor(torch tensor)", "np.from_dlpack(torch tensor)", ours, theirs, "us", "<= 1.0x", ours / theirs <= 1.0))

    try:
        import tvm_ffi  # apache-tvm-ffi: a consumer of DLPack 1.3's C exchange API (issue 11)
    except ImportError:
        tvm_ffi = None
    if tvm_ffi is not None:
        # 16 x f32, each producer's own tensor; torch and dlshare publish the exchange API,
        # NumPy goes through a capsule
        a16 = np.zeros(16, dtype=np.float32)
        x16 = torch.zeros(16)
        d16 = dlshare.from_numpy(a16)
        torch_us = per_call_us(lambda: tvm_ffi.from_dlpack(x16))
        numpy_us = per_call_us(lambda: tvm_ffi.from_dlpack(a16))
        ours = per_call_us(lambda: tvm_ffi.from_dlpack(d16))
        rows.append(("tvm_ffi.from_dlpack(our tensor)", "tvm_ffi.from_dlpack(torch tensor)", ours, torch_us, "us", "<= 1.0x", ours / torch_us <= 1.0))
        rows.append(("  the same", "tvm_ffi.from_dlpack(ndarray)", ours, numpy_us, "us", "(no target)", None))

    if hasattr(dlshare, "from_dataframe"):
        rng = np.random.default_rng(0)
        values = rng.standard_normal((1_000_000, 16))
        values[rng.random(values.shape) < 0.05] = np.nan
        df = pd.DataFrame(values, columns=[f"c{i}" for i in range(16)])
        # the first call of each, into memory the process has not used before (on a VM the
        # host's page faults dominate it); then the best of five
        first_ours = bulk_s(lambda: dlshare.from_dataframe(df, nan="zero"), repeat=1)
        first_theirs = bulk_s(lambda: torch.tensor(df.fillna(0).values, dtype=torch.float32), repeat=1)
        ours = bulk_s(lambda: dlshare.from_dataframe(df, nan="zero"))
        theirs = bulk_s(lambda: torch.tensor(df.fillna(0).values, dtype=torch.float32))
        check = dlshare.from_dataframe(df, nan="zero").numpy()
        ref = torch.tensor(df.fillna(0).values, dtype=torch.float32).numpy()
        assert np.array_equal(check, ref), "from_dataframe differs from the pandas recipe"
        rows.append(("from_dataframe(1M x 16 f64, NaN->0)", "torch.tensor(df.fillna(0).values, f32)", ours * 1e3, theirs * 1e3, "ms", ">= 2x faster", theirs / ours >= 2.0))
        rows.append(("  the same, first call of each", "", first_ours * 1e3, first_theirs * 1e3, "ms", "(no target)", None))

    print(f"\n{'operation':<38} {'peer':<40} {'dlshare':>10} {'peer':>10} {'ratio':>7}  target        met")
    for name, peer, ours, theirs, unit, target, met in rows:
        print(f"{name:<38} {peer:<40} {ours:>8.2f}{unit} {theirs:>8.2f}{unit} {ours / theirs:>6.2f}x  "
              f"{target:<13} {'' if met is None else 'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
