#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, lints, the header check and the Rust
# tests (cargo test), the C tests against the installed CMake package (ctest), and the Python
# tests against the installed Python package (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test
echo "== C tests (CMake package + ctest)"
bash tests/c/run.sh
echo "== Python tests (pytest, against the installed package)"
python3 -m pytest tests/python -q -p no:cacheprovider
echo "== all tests passed"
