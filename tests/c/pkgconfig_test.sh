#!/bin/sh
# Builds a consumer with nothing but `pkg-config --cflags --libs dlshare`, then runs it.
# usage: pkgconfig_test.sh PKG_CONFIG CC PKGCONFIG_DIR SOURCE OUTPUT
set -eu
pkg_config=$1 cc=$2 pc_dir=$3 source=$4 output=$5

PKG_CONFIG_PATH=$pc_dir
export PKG_CONFIG_PATH
cflags=$("$pkg_config" --cflags dlshare)
libs=$("$pkg_config" --libs dlshare)
version=$("$pkg_config" --modversion dlshare)
libdir=$("$pkg_config" --variable=libdir dlshare)
echo "pkg-config dlshare $version: cflags '$cflags', libs '$libs'"

# shellcheck disable=SC2086 # the flags are meant to be split
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic $cflags -DEXPECTED_VERSION="\"$version\"" \
  "$source" -o "$output" $libs -Wl,-rpath,"$libdir"
"$output"
