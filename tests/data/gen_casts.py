"""Generates tests/data/casts.txt: reference results of element casts between the 15 dtypes
dlshare computes with, made by NumPy's astype (and PyTorch's .to() where bfloat16 is involved,
since NumPy has no bfloat16).

Each line: `<src> <dst> <count> <src bytes hex> <dst bytes hex>` (native little-endian bytes).
Values whose cast is undefined in C (NaN/inf or out-of-range floats to integers, where NumPy
warns and the result depends on the platform) are left out of float -> integer pairs.

Run: python3 tests/data/gen_casts.py  (needs numpy and torch)
"""

import pathlib
import warnings

import numpy as np
import torch

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]
INTS = {d for d in DTYPES if "int" in d}
FLOATS = {"float16", "bfloat16", "float32", "float64"}
COMPLEX = {"complex64", "complex128"}

TORCH = {"bool": torch.bool, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
         "int64": torch.int64, "uint8": torch.uint8, "uint16": torch.uint16,
         "uint32": torch.uint32, "uint64": torch.uint64, "float16": torch.float16,
         "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
         "complex64": torch.complex64, "complex128": torch.complex128}


def source_values(dtype):
    """A handful of telling values representable in `dtype`, as a list of Python numbers."""
    if dtype == "bool":
        return [False, True, True, False]
    if dtype in INTS:
        info = np.iinfo(dtype)
        vals = [0, 1, 2, 7, 100, 127, 255, 1000, 65535, 70000, 2**31 - 1, 2**40 + 3,
                2**53 + 1, info.max, info.min]
        if info.min < 0:
            vals += [-1, -2, -128, -1000, -70000, -(2**31)]
        return sorted({v for v in vals if info.min <= v <= info.max})
    if dtype in FLOATS:
        return [0.0, -0.0, 0.5, 1.0, 1.5, -1.5, 2.75, -2.75, 3.1415926, 100.25, -100.25, 255.5,
                300.5, 1000.125, -70000.5, 65504.0, 1e-3, 6e-8, 1e5, float("inf"),
                float("-inf"), float("nan")]
    return [complex(1.5, 2.0), complex(-3.0, -0.5), complex(0.0, 0.0), complex(0.0, 1.0),
            complex(100.25, -7.0), complex(-0.5, 0.0)]


def make_source(dtype):
    vals = source_values(dtype)
    if dtype == "bfloat16":
        return torch.tensor(vals, dtype=torch.float64).to(torch.bfloat16)
    return np.array(vals, dtype=np.float64 if dtype in FLOATS else None).astype(dtype)


def as_float64(src, dtype):
    if dtype == "bfloat16":
        return src.to(torch.float64).numpy()
    return np.asarray(src).astype(np.complex128 if dtype in COMPLEX else np.float64)


def keep_mask(src, src_dtype, dst_dtype):
    """Elements whose cast has a defined result."""
    n = len(src)
    if dst_dtype not in INTS or src_dtype not in FLOATS | COMPLEX:
        return np.ones(n, dtype=bool)
    v = as_float64(src, src_dtype).real
    info = np.iinfo(dst_dtype)
    finite = np.isfinite(v)
    t = np.trunc(np.where(finite, v, 0))
    # in range of the target, or (as C does on x86-64) of int64 when the target is narrower
    # and signed/unsigned wrap-around is what NumPy produces; keep only exact in-range values
    # plus negative values for unsigned targets (NumPy wraps those through int64).
    in_range = (t >= info.min) & (t <= info.max)
    wraps = (info.min == 0) & (t < 0) & (t > -(2**31))
    return finite & (in_range | wraps)


def cast(src, src_dtype, dst_dtype):
    if "bfloat16" in (src_dtype, dst_dtype):
        t = src if src_dtype == "bfloat16" else torch.from_numpy(np.ascontiguousarray(src))
        out = t.to(TORCH[dst_dtype])
        return out.view(torch.int16).numpy() if dst_dtype == "bfloat16" else out.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return src.astype(dst_dtype)


def raw(a, dtype):
    if dtype == "bfloat16" and isinstance(a, torch.Tensor):
        a = a.view(torch.int16).numpy()
    return np.ascontiguousarray(a).tobytes().hex()


def main():
    lines = []
    for s in DTYPES:
        src_all = make_source(s)
        for d in DTYPES:
            mask = keep_mask(src_all, s, d)
            if isinstance(src_all, torch.Tensor):
                src = src_all[torch.from_numpy(mask)]
            else:
                src = src_all[mask]
            out = cast(src, s, d)
            lines.append(f"{s} {d} {len(src)} {raw(src, s)} {raw(out, d)}")
    path = pathlib.Path(__file__).with_name("casts.txt")
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} dtype pairs to {path}")


if __name__ == "__main__":
    main()
