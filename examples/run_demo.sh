#!/usr/bin/env bash
# Builds and installs dlshare into build/_install (cargo driven by CMake), builds the example
# consumer (examples/CMakeLists.txt) against that install, and runs the demo.
# Idempotent: re-running rebuilds only what changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
prefix=$repo/build/_install

cmake -S cmake -B build/cmake
cmake --build build/cmake
rm -rf "$prefix"
cmake --install build/cmake --prefix "$prefix"

cmake -S examples -B build/examples -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build/examples

echo
build/examples/dlshare_demo
