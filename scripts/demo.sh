#!/usr/bin/env bash
# Sets everything up, installs the CMake package and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
bash examples/run_demo.sh
