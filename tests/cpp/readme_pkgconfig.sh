#!/bin/sh
# Runs the README's pkg-config example (examples/readme/pkgconfig.sh) as a reader would: in a
# directory holding example.c and example.cpp, with PREFIX set to the dlshare install.
# usage: readme_pkgconfig.sh PREFIX EXAMPLES_DIR WORK_DIR
set -eu
prefix=$1 examples=$2 work=$3

rm -rf "$work"
mkdir -p "$work"
cp "$examples/example.c" "$examples/example.cpp" "$work/"
cd "$work"
PREFIX=$prefix sh -eu "$examples/pkgconfig.sh"
