#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, lints, the header check and the Rust
# tests (cargo test), the C and C++ tests against the installed CMake package (ctest), the
# Python tests against the installed Python package (pytest, twice: with the library's CPython
# fast path and on cffi alone; it also checks the Julia
# package's sources and ccall contract), the manylinux wheel (scripts/build-wheel.sh, about two
# minutes from scratch) installed and smoke-tested without Rust on PATH (the full distribution
# tests, scripts/test-dist.sh, download from PyPI and run separately), and the Julia tests when
# julia is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo clippy --no-default-features (the crate without its cuda and ndarray features)"
cargo clippy --no-default-features --all-targets -- -D warnings
echo "== cargo test"
cargo test
echo "== cargo package (the crate as crates.io would get it: Cargo.toml's include list, then a build of it)"
cargo package --allow-dirty --quiet
echo "== C and C++ tests (CMake package + ctest: tests/c, tests/cpp, README examples)"
bash tests/c/run.sh
echo "== hardening: malformed-input catalogue, C tests under Valgrind and ASan+UBSan (docs/hardening.md)"
bash tests/harden/run
echo "== Python tests (pytest, against the installed package, with the library's CPython fast path)"
python3 -m pytest tests/python -q -p no:cacheprovider
echo "== Python tests again on cffi alone (DLSHARE_PURE_PYTHON=1: the path other interpreters take)"
DLSHARE_PURE_PYTHON=1 python3 -m pytest tests/python -q -p no:cacheprovider
echo "== CUDA tests on the simulated driver (tests/cuda_sim/run: Rust, C and Python CUDA tests, no GPU needed)"
bash tests/cuda_sim/run
echo "== wheel: scripts/build-wheel.sh (manylinux_2_28 wheel + sdist in dist/), then the wheel without Rust on PATH"
bash scripts/build-wheel.sh
bash scripts/test-dist.sh wheel-smoke
echo "== Julia tests (bindings/julia/DLShare)"
bash bindings/julia/run_tests.sh
echo "== all tests passed"
