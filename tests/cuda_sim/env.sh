#!/usr/bin/env bash
# Prints the `export` lines that make every dlshare process started from this shell run on the
# simulated CUDA driver (building it first if needed):
#     eval "$(bash tests/cuda_sim/env.sh)"
# Knobs (see tests/cuda_sim/sim.c): DLSHARE_SIM_DEVICES (devices, default 2 here),
# DLSHARE_SIM_MEM_MB (memory per device, default 4096), DLSHARE_SIM_DELAY_US (sleep before each
# copy, default 0), DLSHARE_SIM_FAULTS (fault injection), DLSHARE_SIM_STATS=1 (counters at exit).
# Only programs that load "libcuda.so" by that name (dlshare does) see the simulator; PyTorch's
# CUDA runtime looks for libcuda.so.1 and keeps seeing no GPU.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(bash "$here/build")
echo "export LD_LIBRARY_PATH=$dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export DLSHARE_SIM_DEVICES=${DLSHARE_SIM_DEVICES:-2}"
echo "unset DLSHARE_DISABLE_CUDA"
