#!/usr/bin/env bash
# Runs the Julia package's tests (bindings/julia/DLShare/test/runtests.jl) and the README's Julia
# example (examples/readme/example.jl) against this checkout's library, when `julia` is on
# PATH; otherwise prints a visible "skipped" line. Either way the Julia sources are parsed and
# their ccall contract is replayed by tests/python/test_julia_contract.py (pytest).
# The library is DLSHARE_LIBRARY, else build/_install/lib/libdlshare.so (tests/c/run.sh).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
package=$repo/bindings/julia/DLShare

if ! command -v julia >/dev/null 2>&1; then
  echo "skipped: julia not found (Julia tests and the README's Julia example not run; the" \
       "Julia sources' syntax and ccall contract are checked by tests/python/test_julia_contract.py)"
  exit 0
fi
export DLSHARE_LIBRARY=${DLSHARE_LIBRARY:-$repo/build/_install/lib/libdlshare.so}
echo "julia $(julia --version | awk '{print $3}'), library $DLSHARE_LIBRARY"
julia --project="$package" -e 'using Pkg; Pkg.test()'
julia --project="$package" "$repo/examples/readme/example.jl"
