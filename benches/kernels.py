"""Copy kernels against NumPy and PyTorch, in one process, on the same inputs, output allocation
included (issue #4). A benchmark, not a test: it prints a table of GB/s (bytes of output written
per second) and the ratio to the best peer, with the issue's targets.

Each case runs every library once per round, in a rotating order, for several rounds; the table
shows medians. The 16-element case is the C API per-call cost (view in, tensor out, release),
measured by the Rust benchmark benches/small_copy.rs, which this script runs.

Run (from the repository root):
    cargo build --release && cargo build --release --benches
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=bindings/python \\
        python3 benches/kernels.py [--rounds N] [--docs]

--docs also runs benches/threads.rs (1 vs 2 threads by size) and rewrites docs/benchmarks.md
(tables of this run) and docs/kernels.png.
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("DLSHARE_LIBRARY", str(REPO / "target" / "release" / "libdlshare.so"))
sys.path.insert(0, str(REPO / "bindings" / "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dlshare  # noqa: E402
from dlshare._ffi import lib  # noqa: E402

N = 8192  # 8192 x 8192 float32 = 256 MiB


FRESH = "dlshare fresh"  # the same call with the buffer cache off: every output in fresh memory


class Case:
    def __init__(self, name, out_bytes, dl, np_fn=None, torch_fn=None, targets=()):
        self.name = name
        self.out_bytes = out_bytes
        self.fns = {"dlshare": dl, FRESH: dl, "NumPy": np_fn, "PyTorch": torch_fn}
        self.fns = {k: v for k, v in self.fns.items() if v is not None}
        # (peer, minimum ratio peer_time / dlshare_time)
        self.targets = targets
        self.times: dict[str, list[float]] = {k: [] for k in self.fns}

    def median(self, lib_name):
        return statistics.median(self.times[lib_name])

    def gbps(self, lib_name):
        return self.out_bytes / self.median(lib_name) / 1e9


def cpu_snapshot():
    """(busy seconds of all CPUs, this process's CPU seconds, wall time), to tell how much CPU
    other processes took while we timed (Linux)."""
    try:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz
    me = os.times()
    return busy, me.user + me.system, time.perf_counter()


def timed(fn, fresh=False):
    """Seconds of one call, result freed afterwards. `fresh`: with dlshare's buffer cache
    emptied and off (set up and restored outside the timed region)."""
    gc.collect()
    if fresh:
        dlshare.set_cache_limit(0)
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    del out
    if fresh:
        dlshare.set_cache_limit(None)
    return dt


def check_results(a, f, r, d, b, s):
    """The dlshare results are the peers' results (bit for bit) before anything is timed."""
    same = lambda ours, theirs: np.array_equal(np.asarray(ours.numpy()), theirs)  # noqa: E731
    assert same(dlshare.tensor(a), a)
    assert same(dlshare.tensor(f), np.ascontiguousarray(f))
    assert same(dlshare.as_tensor(r), np.ascontiguousarray(r))
    assert same(dlshare.as_tensor(d, dtype="float32"), d.astype(np.float32))
    assert same(dlshare.as_tensor(a, dtype="float16"), a.astype(np.float16))
    ours = dlshare.as_tensor(a, dtype="bfloat16")
    theirs = torch.from_numpy(a).to(torch.bfloat16)
    assert torch.equal(torch.from_dlpack(ours), theirs)
    assert same(dlshare.as_tensor(b), b.astype("<f4"))
    assert same(dlshare.tensor(s), np.ascontiguousarray(s))


def rust_bench(name: str) -> str:
    """Runs a Rust benchmark (built by `cargo build --release --benches`) and returns its output."""
    built = sorted(
        (p for p in glob.glob(str(REPO / f"target/release/deps/{name}-*"))
         if os.access(p, os.X_OK) and not p.endswith(".d")),
        key=os.path.getmtime,
    )
    cmd = [built[-1]] if built else ["cargo", "bench", "--bench", name]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout


def small_call_ns() -> dict[str, float]:
    """The rows of benches/small_copy.rs: name -> ns per call."""
    rows = {}
    for line in rust_bench("small_copy").splitlines():
        m = re.match(r"\s+(.+?)\s{2,}([0-9.]+)$", line)
        if m:
            rows[m.group(1)] = float(m.group(2))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md and docs/kernels.png")
    args = ap.parse_args()

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, N), dtype=np.float32)
    t = torch.from_numpy(a)
    f = np.asfortranarray(a)
    r = a[::-1]
    d = a.astype(np.float64)
    td = torch.from_numpy(d)
    b = a.astype(">f4")
    s = a[:, ::2]
    check_results(a, f, r, d, b, s)

    nb = a.nbytes
    cases = [
        Case("contiguous copy (new tensor)", nb, lambda: dlshare.tensor(a), lambda: a.copy(),
             lambda: t.clone(), [("NumPy", 1.3), ("PyTorch", 3.0)]),
        Case("F-order -> C (8192^2 f32)", nb, lambda: dlshare.tensor(f),
             lambda: np.ascontiguousarray(f), lambda: t.t().contiguous(),
             [("NumPy", 5.0), ("PyTorch", 2.0)]),
        Case("reversed a[::-1] -> C", nb, lambda: dlshare.as_tensor(r),
             lambda: np.ascontiguousarray(r), lambda: t.flip(0), [("NumPy", 1.3)]),
        Case("float64 -> float32", nb, lambda: dlshare.as_tensor(d, dtype="float32"),
             lambda: d.astype(np.float32), lambda: td.to(torch.float32), [("best", 1.2)]),
        Case("float32 -> float16", nb // 2, lambda: dlshare.as_tensor(a, dtype="float16"),
             lambda: a.astype(np.float16), lambda: t.to(torch.float16),
             [("PyTorch", 2.0), ("NumPy", 5.0)]),
        Case("float32 -> bfloat16", nb // 2, lambda: dlshare.as_tensor(a, dtype="bfloat16"),
             None, lambda: t.to(torch.bfloat16), [("PyTorch", 2.0)]),
        Case("'>f4' -> native", nb, lambda: dlshare.as_tensor(b), lambda: b.astype("<f4"), None,
             [("NumPy", 1.2)]),
        Case("strided view a[:, ::2]", nb // 2, lambda: dlshare.tensor(s),
             lambda: np.ascontiguousarray(s), lambda: t[:, ::2].contiguous(), []),
    ]
    prefaulted = np.empty_like(a)
    np.copyto(prefaulted, a)
    memcpy = Case("memcpy baseline (np.copyto, no allocation)", nb, None, lambda: np.copyto(prefaulted, a))
    memcpy.fns = {"NumPy": memcpy.fns["NumPy"]}
    memcpy.times = {"NumPy": []}

    before = cpu_snapshot()
    for case in cases + [memcpy]:
        names = list(case.fns)
        for name in names:  # warm-up
            timed(case.fns[name], name == FRESH)
        for i in range(args.rounds):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                case.times[name].append(timed(case.fns[name], name == FRESH))

    after = cpu_snapshot()
    small = small_call_ns()

    header = (f"dlshare {dlshare.__version__} ({lib.dlshare_get_num_threads()} threads), numpy {np.__version__}, "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads), python {platform.python_version()}, "
              f"{threads} cores ({platform.processor() or platform.machine()}), medians of {args.rounds} rounds")
    if before and after:
        wall = after[2] - before[2]
        others = max(0.0, (after[0] - before[0]) - (after[1] - before[1]))
        header += (f"\nother processes used {others / wall:.2f} of the {threads} cores on average while "
                   f"this ran ({wall:.0f} s); the parallel kernels need them free")
    lines = [header, ""]
    cols = (f"{'case':<34} {'dlshare':>8} {'fresh':>8} {'NumPy':>8} {'PyTorch':>8}  "
            f"{'ratio to best peer':>18} {'fresh':>6}  targets")
    lines.append(cols)
    lines.append("-" * len(cols))
    verdicts = []
    for case in cases:
        gb = {k: case.gbps(k) for k in case.fns}
        peers = {k: v for k, v in gb.items() if k not in ("dlshare", FRESH)}
        best = max(peers.values())
        cells = [f"{gb[k]:8.2f}" if k in gb else f"{'-':>8}"
                 for k in ("dlshare", FRESH, "NumPy", "PyTorch")]
        target_text = []
        for peer, want in case.targets:
            ref = best if peer == "best" else peers[peer]
            got = gb["dlshare"] / ref
            ok = got >= want
            label = "best peer" if peer == "best" else peer
            target_text.append(f">= {want}x {label}: {got:.2f}x {'met' if ok else 'MISSED'}")
            verdicts.append((case.name, label, want, got, ok))
        lines.append(f"{case.name:<34} {' '.join(cells)}  {gb['dlshare'] / best:17.2f}x "
                     f"{gb[FRESH] / best:5.2f}x  " + "; ".join(target_text))
    lines.append(f"{memcpy.name:<34} {'':>8} {'':>8} {memcpy.gbps('NumPy'):8.2f}")
    lines.append("(GB/s = bytes of output written per second; ratio = best peer's time / dlshare's time;")
    lines.append(" dlshare = with its buffer cache, as a program converting arrays of one size over and")
    lines.append(" over runs; fresh = cache off, every output in memory never touched before)")
    lines.append("")
    lines.append("16-element conversion through the C API (ns per call; target <= 200 ns):")
    for name, ns in small.items():
        lines.append(f"  {name:<50} {ns:8.1f}")
    key = next((k for k in small if k.startswith("from_view f64->f32") and "no decision" in k), None)
    if key:
        verdicts.append(("16-element conversion (C API)", "ns", 200, small[key], small[key] <= 200))
    text = "\n".join(lines)
    print(text)

    if args.docs:
        threads_table = rust_bench("threads").strip()
        print("\n" + threads_table)
        write_docs(cases, memcpy, small, text, verdicts, threads_table)


def write_docs(cases, memcpy, small, table, verdicts, threads_table) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    libs = ["dlshare", FRESH, "NumPy", "PyTorch"]
    colors = {"dlshare": "#1f77b4", FRESH: "#9ecae1", "NumPy": "#ff7f0e", "PyTorch": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.2
    for j, name in enumerate(libs):
        xs = [i + (j - 1.5) * width for i, c in enumerate(cases) if name in c.fns]
        ys = [c.gbps(name) for c in cases if name in c.fns]
        ax.bar(xs, ys, width, label=name, color=colors[name])
    ax.axhline(memcpy.gbps("NumPy"), color="grey", linestyle="--", linewidth=1,
               label="memcpy into touched memory (np.copyto)")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c.name.replace(" (", "\n(") for c in cases], fontsize=8, rotation=20, ha="right")
    ax.set_ylabel("GB/s of output (allocation included)")
    ax.set_title("Copies into a new C-contiguous tensor, 8192 x 8192 inputs, one process")
    ax.legend(fontsize=8)
    fig.tight_layout()
    docs = REPO / "docs"
    fig.savefig(docs / "kernels.png", dpi=110)

    met = [v for v in verdicts if v[4]]
    missed = [v for v in verdicts if not v[4]]
    fmt = lambda v: (f"- {v[0]}: {v[3]:.0f} ns per call (target <= {v[2]} ns)" if v[1] == "ns"  # noqa: E731
                     else f"- {v[0]}: {v[3]:.2f}x {v[1]} (target >= {v[2]}x)")
    template = (REPO / "benches" / "kernels_doc.md").read_text()
    doc = template.format(
        table=table,
        met="\n".join(fmt(v) for v in met) or "- none",
        missed="\n".join(fmt(v) for v in missed) or "- none",
        memcpy=f"{memcpy.gbps('NumPy'):.1f}",
        threads=threads_table,
        date=time.strftime("%Y-%m-%d"),
    )
    (docs / "benchmarks.md").write_text(doc)
    print(f"\nwrote {docs / 'benchmarks.md'} and {docs / 'kernels.png'}")


if __name__ == "__main__":
    main()
