#!/usr/bin/env bash
# Builds and installs dlshare into build/_install (cargo driven by CMake), builds the C test
# project (tests/c) against that install, and runs it with ctest. Exits non-zero on any failure.
# Idempotent: re-running rebuilds only what changed (the install prefix is recreated).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
prefix=$repo/build/_install
jobs=$(nproc 2>/dev/null || echo 4)

cmake -S cmake -B build/cmake
cmake --build build/cmake
rm -rf "$prefix"
cmake --install build/cmake --prefix "$prefix"

cmake -S tests/c -B build/c-tests -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build/c-tests --parallel "$jobs"
cd build/c-tests
ctest --output-on-failure --parallel "$jobs"
