"""GPU transfer benchmark (issue #7): 256 MiB host -> device and device -> host, from pageable
and from pinned host memory, dlshare against PyTorch in the same process on the same GPU.

Targets: from pageable memory >= 1.0x PyTorch's pageable transfer (`.to("cuda")`, `.cpu()`);
from pinned memory >= 0.9x the pinned peak measured in this run (PyTorch's `non_blocking` copy
between a pinned buffer and the device, which allocates nothing: its caching allocators).

dlshare's copies always allocate their destination (tensors are immutable): a fresh device
buffer (cuMemAlloc) for host -> device, fresh pageable memory for device -> host (as `.cpu()`
does) and fresh pinned memory (cuMemHostAlloc, slow: page locking) for device -> pinned host;
the last row says so. Environment knobs of the library are reported with the results:
DLSHARE_CUDA_CHUNK_MB (staging buffer size), DLSHARE_CUDA_PAGEABLE=register (pin the pageable
buffer instead of staging).

    python3 tests/gpu/bench.py [--mib 256] [--reps 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

import dlshare


def measure(fn, reps: int, cleanup=None) -> float:
    """Median seconds of `fn()` with the device idle before and after each call; what `fn`
    returns is dropped (and `cleanup` run) outside the timed region."""
    times = []
    for i in range(reps + 2):
        torch.cuda.synchronize()
        dlshare.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        del out
        if cleanup:
            cleanup()
        if i >= 2:  # two warm-up calls
            times.append(elapsed)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not (dlshare.cuda.is_available() and torch.cuda.is_available()):
        print(f"skipped: no CUDA device ({dlshare.cuda.unavailable_reason()})")
        return 0

    nbytes = args.mib << 20
    n = nbytes // 4
    gb = nbytes / 1e9
    pageable = np.random.default_rng(0).random(n, dtype=np.float32)  # touched pageable memory
    pinned = torch.from_numpy(pageable).pin_memory()
    ours_pinned = dlshare.empty((n,), "float32", "cuda_host:0")
    np.asarray(ours_pinned)[:] = pageable
    on_device = torch.from_numpy(pageable).to("cuda")
    pinned_out = torch.empty(n, dtype=torch.float32).pin_memory()

    # correctness once, both ways
    d = dlshare.tensor(pageable, device="cuda:0")
    assert torch.equal(torch.from_dlpack(d), on_device)
    assert np.array_equal(np.asarray(dlshare.tensor(on_device, device="cpu")), pageable)
    del d

    reps = args.reps
    results = {
        "h2d": {
            "torch pageable (.to('cuda'))": measure(
                lambda: torch.from_numpy(pageable).to("cuda"), reps),
            "torch pinned peak (non_blocking)": measure(
                lambda: pinned.to("cuda", non_blocking=True), reps),
            "dlshare pageable": measure(
                lambda: dlshare.tensor(pageable, device="cuda:0"), reps),
            "dlshare pinned (torch pin_memory source)": measure(
                lambda: dlshare.tensor(pinned, device="cuda:0"), reps),
            "dlshare pinned (cuda_host:0 source)": measure(
                lambda: dlshare.tensor(ours_pinned, device="cuda:0"), reps),
        },
        "d2h": {
            "torch pageable (.cpu())": measure(lambda: on_device.cpu(), reps),
            "torch pinned peak (non_blocking)": measure(
                lambda: pinned_out.copy_(on_device, non_blocking=True), reps),
            "dlshare pageable": measure(lambda: dlshare.tensor(on_device, device="cpu"), reps),
            "dlshare pinned (allocates cuda_host:0)": measure(
                lambda: dlshare.tensor(on_device, device="cuda_host:0"), reps),
        },
    }

    name = torch.cuda.get_device_name(0)
    knobs = {k: os.environ.get(k) for k in ("DLSHARE_CUDA_CHUNK_MB", "DLSHARE_CUDA_PAGEABLE")}
    print(f"{name}, {args.mib} MiB float32, median of {reps}; dlshare knobs {knobs}")
    for direction, rows in results.items():
        print(f"  {direction}")
        for label, seconds in rows.items():
            print(f"    {label:44s} {seconds * 1e3:8.2f} ms  {gb / seconds:6.1f} GB/s")

    def ratio(direction, ours, theirs):
        return results[direction][theirs] / results[direction][ours]

    checks = [
        ("h2d pageable vs torch pageable", ratio(
            "h2d", "dlshare pageable", "torch pageable (.to('cuda'))"), 1.0),
        ("h2d pinned vs pinned peak", ratio(
            "h2d", "dlshare pinned (torch pin_memory source)",
            "torch pinned peak (non_blocking)"), 0.9),
        ("h2d pinned (cuda_host) vs pinned peak", ratio(
            "h2d", "dlshare pinned (cuda_host:0 source)",
            "torch pinned peak (non_blocking)"), 0.9),
        ("d2h pageable vs torch pageable", ratio(
            "d2h", "dlshare pageable", "torch pageable (.cpu())"), 1.0),
        ("d2h pinned (incl. allocation) vs pinned peak", ratio(
            "d2h", "dlshare pinned (allocates cuda_host:0)",
            "torch pinned peak (non_blocking)"), 0.9),
        ("h2d pageable vs pinned peak (info)", ratio(
            "h2d", "dlshare pageable", "torch pinned peak (non_blocking)"), None),
        ("d2h pageable vs pinned peak (info)", ratio(
            "d2h", "dlshare pageable", "torch pinned peak (non_blocking)"), None),
    ]
    print("  ratios (dlshare speed / reference speed)")
    for label, value, target in checks:
        verdict = "" if target is None else ("  MET" if value >= target else "  MISSED")
        goal = "" if target is None else f" (target >= {target:.1f}x)"
        print(f"    {label:46s} {value:5.2f}x{goal}{verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "mib": args.mib, "knobs": knobs, "seconds": results,
                       "ratios": {label: value for label, value, _ in checks}}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
