#!/usr/bin/env bash
# Sets everything up, then runs the demo: the live Python tour (NumPy, PyTorch, JAX, pandas,
# with a C-side check), then the C demo built against the installed CMake package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
python3 examples/tour.py
echo
echo "== The C demo (CMake package installed into build/_install)"
bash examples/run_demo.sh 2>&1 | sed -n '/^$/,$p'

