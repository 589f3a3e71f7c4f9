#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need, idempotently, on a fresh Debian 12
# machine with Rust and Python 3 (what this project's machines come with). Safe to re-run: each
# step checks first and does nothing when its tool is already there.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: CMake, pkg-config, C/C++ compilers, binutils (nm for the symbol test).
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v nm >/dev/null || need_apt+=(binutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Rust toolchain pieces (rustup is on the machine; components are cheap when present).
if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi

# Python packages: torch ships the upstream DLPack header (ATen/dlpack.h) that the C tests
# include in both orders with ours; numpy is used by the reference-data generator.
PY=${PYTHON:-python3}
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
need_pip=()
"$PY" -c "import numpy" 2>/dev/null || need_pip+=(numpy)
"$PY" -c "import torch" 2>/dev/null || need_pip+=(torch)
if [ ${#need_pip[@]} -gt 0 ]; then
  say "pip install ${need_pip[*]} (torch is large: a few minutes)"
  "$PY" -m pip install -q "${need_pip[@]}"
fi
say "ready: $(cmake --version | head -n1), $(cargo --version), python $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
