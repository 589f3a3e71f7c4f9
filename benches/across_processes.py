"""Handing a tensor to another process (issue 15), one run, figures side by side with ratios.

A 256 MiB float32 array (and a 1 MiB one for the shared cases) is handed to a child process
that reads one element and answers; the time is from the send to the answer (the child is
already running and waiting). Cases:

- NumPy through `multiprocessing.Pipe` (pickled: the bytes are copied through the pipe);
- torch through a `torch.multiprocessing` Queue, first time (the put moves the storage to shared
  memory: a copy) and already `share_memory_()`;
- dlshare shared tensor (`dlshare.zeros(..., shared=True)`) through a `multiprocessing` Queue;
- dlshare pickle protocol 5 round trip in one process (`dumps` with a `buffer_callback`, `loads`
  over the buffers).

Each figure is the median of several hand-offs (the first of a kind is in it). Targets, checked
at the end: dlshare shared <= torch already shared; dlshare 256 MiB <= 3 x its 1 MiB + 5 ms;
dlshare shared >= 100x faster than NumPy through a Pipe; pickle-5 round trip of 256 MiB <= 1 ms.

Run: python3 benches/across_processes.py   (after scripts/setup.sh installed the package)"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.multiprocessing as tmp

import dlshare

MIB = 1 << 20


def child(inbox, outbox) -> None:
    """Reads one element of each array it is handed and answers with it."""
    while True:
        item = inbox.recv() if hasattr(inbox, "recv") else inbox.get()
        if item is None:
            return
        if isinstance(item, torch.Tensor):
            value = float(item[1])
        else:
            value = float(np.asarray(item)[1])
        del item
        outbox.send(value) if hasattr(outbox, "send") else outbox.put(value)


def handoffs(ctx, make, n: int, pipe: bool = False) -> list[float]:
    """Seconds from the send to the child's answer, for `n` arrays made by `make()` (made and
    released outside the timed part)."""
    if pipe:
        inbox_here, inbox_there = ctx.Pipe()
        outbox_here, outbox_there = ctx.Pipe()
        p = ctx.Process(target=child, args=(inbox_there, outbox_there), daemon=True)
        send, recv = inbox_here.send, outbox_here.recv
    else:
        inbox, outbox = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=child, args=(inbox, outbox), daemon=True)
        send, recv = inbox.put, outbox.get
    p.start()
    send(make())  # the child is up and has imported what it needs
    recv()
    times = []
    for _ in range(n):
        x = make()
        t0 = time.perf_counter()
        send(x)
        value = recv()
        times.append(time.perf_counter() - t0)
        assert value == 1.0, value
        del x
    send(None)
    p.join(60)
    return times


def numpy_array(nbytes: int):
    return lambda: np.ones(nbytes // 4, np.float32)


def torch_fresh(nbytes: int):
    return lambda: torch.ones(nbytes // 4, dtype=torch.float32)


def torch_shared(nbytes: int):
    def make():
        t = torch.ones(nbytes // 4, dtype=torch.float32)
        t.share_memory_()
        return t
    return make


def dlshare_shared(nbytes: int):
    def make():
        t = dlshare.zeros(nbytes // 4, "float32", shared=True)
        t.numpy()[1] = 1.0
        return t
    return make


def pickle5_roundtrip(nbytes: int, n: int) -> list[float]:
    t = dlshare.empty(nbytes // 4, "float32")
    t.numpy()[:] = 1.0
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        buffers = []
        data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
        u = pickle.loads(data, buffers=buffers)
        times.append(time.perf_counter() - t0)
        assert u.data_ptr == t.data_ptr and len(data) < 1024
        del u, buffers
    return times


def main() -> None:
    ctx = mp.get_context("fork")
    tctx = tmp.get_context("fork")
    print(f"dlshare {dlshare.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} cores, start method fork, "
          f"torch sharing strategy {tmp.get_sharing_strategy()}")
    big, small = 256 * MIB, 1 * MIB
    quick = "--quick" in sys.argv
    reps, slow_reps = (3, 1) if quick else (9, 3)
    rows = {}
    rows["numpy_pipe_256"] = handoffs(ctx, numpy_array(big), slow_reps, pipe=True)
    rows["torch_first_256"] = handoffs(tctx, torch_fresh(big), slow_reps)
    rows["torch_shared_256"] = handoffs(tctx, torch_shared(big), reps)
    rows["dlshare_shared_256"] = handoffs(ctx, dlshare_shared(big), reps)
    rows["torch_first_1"] = handoffs(tctx, torch_fresh(small), reps)
    rows["torch_shared_1"] = handoffs(tctx, torch_shared(small), reps)
    rows["dlshare_shared_1"] = handoffs(ctx, dlshare_shared(small), reps)
    rows["dlshare_pickle5_256"] = pickle5_roundtrip(big, 9)
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}

    labels = {
        "numpy_pipe_256": "NumPy, multiprocessing.Pipe (pickle copy)",
        "torch_first_256": "torch Queue, first time (moved to shared memory)",
        "torch_shared_256": "torch Queue, already share_memory_()",
        "dlshare_shared_256": "dlshare shared tensor, multiprocessing Queue",
        "dlshare_pickle5_256": "dlshare pickle-5 round trip in process",
        "torch_first_1": "torch Queue, first time",
        "torch_shared_1": "torch Queue, already share_memory_()",
        "dlshare_shared_1": "dlshare shared tensor, multiprocessing Queue",
    }
    print(f"\n{'hand-off to a child that reads one element':58} {'median ms':>10} {'min ms':>9}"
          f" {'runs':>5}")
    for size, keys in (("256 MiB", [k for k in labels if k.endswith("_256")]),
                       ("1 MiB", [k for k in labels if k.endswith("_1")])):
        print(f"-- {size} float32")
        for k in keys:
            print(f"   {labels[k]:55} {med[k]:10.3f} {min(rows[k]) * 1e3:9.3f} {len(rows[k]):5}")

    ours = med["dlshare_shared_256"]
    targets = [
        ("dlshare shared <= torch already shared (256 MiB)",
         f"{ours:.3f} ms vs {med['torch_shared_256']:.3f} ms "
         f"(ratio {ours / med['torch_shared_256']:.2f})", ours <= med["torch_shared_256"]),
        ("dlshare shared <= torch already shared (1 MiB)",
         f"{med['dlshare_shared_1']:.3f} ms vs {med['torch_shared_1']:.3f} ms "
         f"(ratio {med['dlshare_shared_1'] / med['torch_shared_1']:.2f})",
         med["dlshare_shared_1"] <= med["torch_shared_1"]),
        ("256 MiB <= 3 x 1 MiB + 5 ms",
         f"{ours:.3f} ms vs {3 * med['dlshare_shared_1'] + 5:.3f} ms "
         f"(256 MiB / 1 MiB = {ours / med['dlshare_shared_1']:.2f})",
         ours <= 3 * med["dlshare_shared_1"] + 5),
        (">= 100x faster than NumPy via Pipe",
         f"{med['numpy_pipe_256'] / ours:.0f}x", med["numpy_pipe_256"] / ours >= 100),
        ("pickle-5 round trip of 256 MiB <= 1 ms",
         f"{med['dlshare_pickle5_256']:.4f} ms", med["dlshare_pickle5_256"] <= 1.0),
        ("vs torch first time (256 MiB)",
         f"{med['torch_first_256'] / ours:.0f}x faster", True),
    ]
    print("\ntargets (issue 15)")
    for name, figure, ok in targets:
        print(f"   {'met    ' if ok else 'NOT MET'} {name:50} {figure}")


if __name__ == "__main__":
    main()
