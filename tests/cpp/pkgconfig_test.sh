#!/bin/sh
# Builds a C++17 consumer with nothing but `pkg-config --cflags --libs dlshare` (strict
# warnings: dlshare.hpp and dlshare.h must compile cleanly), then runs it.
# usage: pkgconfig_test.sh PKG_CONFIG CXX PKGCONFIG_DIR SOURCE OUTPUT
set -eu
pkg_config=$1 cxx=$2 pc_dir=$3 source=$4 output=$5

PKG_CONFIG_PATH=$pc_dir
export PKG_CONFIG_PATH
cflags=$("$pkg_config" --cflags dlshare)
libs=$("$pkg_config" --libs dlshare)
libdir=$("$pkg_config" --variable=libdir dlshare)
echo "pkg-config dlshare $("$pkg_config" --modversion dlshare): cflags '$cflags', libs '$libs'"

# shellcheck disable=SC2086 # the flags are meant to be split
"$cxx" -std=c++17 -Wall -Wextra -Werror -pedantic $cflags "$source" -o "$output" $libs \
  -Wl,-rpath,"$libdir"
"$output"
