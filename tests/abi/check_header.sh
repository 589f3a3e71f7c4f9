#!/usr/bin/env bash
# The header compiles everywhere it costs nothing to support (docs/abi.md, "Portability"):
# C99, C11, C17 with gcc and clang; C++11, C++14, C++17, C++20 with g++ and clang++; all at
# -Wall -Wextra -Werror -pedantic; plus clang syntax checks for Windows (MSVC ABI, with and
# without DLSHARE_STATIC) and macOS (arm64) targets, freestanding so that only the header's
# own standard includes (stdbool.h, stddef.h, stdint.h) are available. dlshare.hpp compiles as
# C++17 with both compilers.
#
#   bash tests/abi/check_header.sh [INCLUDE_DIR]    (default: include/ of this checkout)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
include=${1:-$here/../../include}
flags=(-Wall -Wextra -Werror -pedantic -fsyntax-only -I "$include")
for tool in gcc g++ clang clang++; do
  command -v "$tool" >/dev/null || { echo "$tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
failed=0
check() {  # description, compiler arguments...
  local what=$1
  shift
  if "$@" 2>"${TMPDIR:-/tmp}/dlshare-header-check.err"; then
    echo "ok    $what"
  else
    echo "FAIL  $what: $*"
    cat "${TMPDIR:-/tmp}/dlshare-header-check.err"
    failed=1
  fi
}
for cc in gcc clang; do
  for std in c99 c11 c17; do
    check "$cc -std=$std" "$cc" -std="$std" "${flags[@]}" -x c "$here/header_check.c"
  done
done
for cxx in g++ clang++; do
  for std in c++11 c++14 c++17 c++20; do
    check "$cxx -std=$std" "$cxx" -std="$std" "${flags[@]}" -x c++ "$here/header_check.c"
  done
  check "$cxx -std=c++17 dlshare.hpp" "$cxx" -std=c++17 "${flags[@]}" -x c++ \
    -include dlshare.hpp "$here/header_check.c"
done
for target in x86_64-pc-windows-msvc aarch64-apple-darwin; do
  check "clang --target=$target C11" clang --target="$target" -ffreestanding -std=c11 \
    "${flags[@]}" -x c "$here/header_check.c"
  check "clang++ --target=$target C++17" clang++ --target="$target" -ffreestanding -nostdinc++ \
    -std=c++17 "${flags[@]}" -x c++ "$here/header_check.c"
done
check "clang --target=x86_64-pc-windows-msvc -DDLSHARE_STATIC" clang \
  --target=x86_64-pc-windows-msvc -ffreestanding -std=c11 -DDLSHARE_STATIC "${flags[@]}" \
  -x c "$here/header_check.c"
exit "$failed"
