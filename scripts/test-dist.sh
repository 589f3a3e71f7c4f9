#!/usr/bin/env bash
# Tests what scripts/build-wheel.sh wrote to dist/, installed as a user would install it, each in
# a new virtual environment under build/dist-test/ (recreated on every run):
#
#  1. wheel-fresh: the manylinux wheel in a fresh venv WITHOUT system site-packages and with no
#     cargo/rustc on PATH; numpy, cffi, pandas, pytest and tree-sitter come from PyPI. Runs every
#     Python test file that does not import torch or jax at module level (those are listed);
#     torch/jax are not installed there (a CUDA torch is gigabytes).
#  2. wheel-system: the same wheel in a venv that sees the system's torch/jax/pandas
#     (--system-site-packages), again with no cargo/rustc on PATH: the whole Python test suite.
#  3. sdist: `pip install dlshare-X.Y.Z.tar.gz` in a venv with cargo on PATH (the sdist builds
#     the library from its own rust/ folder; pip's build isolation fetches setuptools), then the
#     whole Python test suite.
#
# `wheel-smoke` (not run by default; scripts/test.sh runs it): the wheel in a venv that sees the
# system's packages, no Rust on PATH, and only the version, license, ABI and conversion tests.
#
# In every run DLSHARE_EXPECT_PREFIX makes tests/python/test_version.py check that the package,
# its header and the loaded libdlshare.so are the venv's, not the checkout's.
#
#   bash scripts/build-wheel.sh && bash scripts/test-dist.sh [wheel-fresh|wheel-system|sdist]...
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { printf '[test-dist] %s\n' "$*"; }
fail() { printf '[test-dist] FAILED: %s\n' "$*" >&2; exit 1; }

PY=${PYTHON:-python3}
work=$repo/build/dist-test
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
unset DLSHARE_LIBRARY PYTHONPATH VIRTUAL_ENV

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
wheel=$(ls dist/dlshare-"$version"-py3-none-*manylinux*.whl 2>/dev/null | head -n1) || true
sdist=dist/dlshare-$version.tar.gz
[ -n "$wheel" ] && [ -f "$sdist" ] || fail "dist/ lacks the wheel or the sdist of $version: run bash scripts/build-wheel.sh"

# A PATH with the system's directories only: no ~/.cargo/bin, no directory holding cargo/rustc.
no_rust_path() {
  local venv=$1 dirs=() d
  for d in /usr/local/bin /usr/bin /bin; do
    [ -x "$d/cargo" ] || [ -x "$d/rustc" ] || dirs+=("$d")
  done
  (IFS=:; echo "$venv/bin:${dirs[*]}")
}

readme_torch_example=tests/python/test_readme_examples.py::test_python_example_runs

# Test files that need torch or jax at import time (skipped in the fresh venv, listed).
needs_torch_or_jax() { grep -lE '^(import|from) (torch|jax)\b' tests/python/test_*.py; }

run_tests() {  # $1 = venv, $2 = PATH, rest = pytest arguments
  local venv=$1 path=$2
  shift 2
  (cd "$repo" && env PATH="$path" DLSHARE_EXPECT_PREFIX="$venv" \
     "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@")
}

stage_wheel_fresh() {
  local venv=$work/wheel-fresh path files=() f
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  path=$(no_rust_path "$venv")
  env PATH="$path" bash -c '! command -v cargo && ! command -v rustc' >/dev/null \
    || fail "cargo or rustc is still on PATH ($path)"
  say "wheel-fresh: pip install $(basename "$wheel") pandas pytest tree-sitter tree-sitter-julia"
  env PATH="$path" "$venv/bin/python" -m pip install -q "$wheel" pandas pytest tree-sitter \
    tree-sitter-julia
  env PATH="$path" "$venv/bin/python" -c 'import torch' 2>/dev/null \
    && fail "torch is importable in the fresh venv"
  for f in tests/python/test_*.py; do
    needs_torch_or_jax | grep -qx "$f" || files+=("$f")
  done
  say "wheel-fresh: not run here (they import torch or jax): $(needs_torch_or_jax | tr '\n' ' ')"
  # The README's Python example imports torch.
  say "wheel-fresh: not run here (imports torch): $readme_torch_example"
  say "wheel-fresh: pytest ${files[*]}"
  run_tests "$venv" "$path" "${files[@]}" --deselect "$readme_torch_example"
}

stage_wheel_system() {
  local venv=$work/wheel-system path
  rm -rf "$venv"
  "$PY" -m venv --system-site-packages "$venv"
  path=$(no_rust_path "$venv")
  env PATH="$path" bash -c '! command -v cargo && ! command -v rustc' >/dev/null \
    || fail "cargo or rustc is still on PATH ($path)"
  say "wheel-system: pip install --no-deps $(basename "$wheel") (torch, jax, pandas from the system)"
  env PATH="$path" "$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel"
  say "wheel-system: pytest tests/python"
  run_tests "$venv" "$path" tests/python
}

stage_wheel_smoke() {  # the quick check scripts/test.sh runs: no downloads, a few test files
  local venv=$work/wheel-smoke path
  rm -rf "$venv"
  "$PY" -m venv --system-site-packages "$venv"
  path=$(no_rust_path "$venv")
  env PATH="$path" bash -c '! command -v cargo && ! command -v rustc' >/dev/null \
    || fail "cargo or rustc is still on PATH ($path)"
  say "wheel-smoke: pip install --no-deps $(basename "$wheel")"
  env PATH="$path" "$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel"
  run_tests "$venv" "$path" tests/python/test_version.py tests/python/test_license.py \
    tests/python/test_abi.py tests/python/test_conversions.py
}

stage_sdist() {
  local venv=$work/sdist start
  rm -rf "$venv"
  "$PY" -m venv --system-site-packages "$venv"
  command -v cargo >/dev/null || fail "the sdist stage needs cargo on PATH"
  say "sdist: pip install --no-deps $(basename "$sdist") (cargo builds the library from the sdist)"
  start=$(date +%s)
  (cd "$work" && "$venv/bin/python" -m pip install -q --no-deps --force-reinstall \
     --no-cache-dir "$repo/$sdist")
  say "sdist: built and installed in $(( $(date +%s) - start )) s"
  say "sdist: pytest tests/python"
  run_tests "$venv" "$venv/bin:$PATH" tests/python
}

mkdir -p "$work"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(wheel-fresh wheel-system sdist)
for stage in "${stages[@]}"; do
  case $stage in
    wheel-fresh) stage_wheel_fresh ;;
    wheel-system) stage_wheel_system ;;
    sdist) stage_sdist ;;
    wheel-smoke) stage_wheel_smoke ;;
    *) fail "unknown stage $stage (wheel-fresh, wheel-system, sdist, wheel-smoke)" ;;
  esac
done
say "passed: ${stages[*]}"
