#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, lints, the header check and the Rust
# tests (cargo test), then the C tests against the installed CMake package (ctest).
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
echo "== all tests passed"
