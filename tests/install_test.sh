#!/usr/bin/env bash
# ctest "install": `cmake --install` of BUILD_DIR into a temporary prefix, then
# a C program built against it twice, through pkg-config and through CMake's
# find_package(df11), each run with the installed libdf11.so.1.
#   tests/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/df11-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
pc=$(dirname "$(find "$tmp/prefix" -name df11.pc | head -n 1)")
[ -n "$pc" ] || { echo "install_test: df11.pc not installed"; exit 1; }
lib=$(pkg-config --with-path="$pc" --variable=libdir df11)
ls "$lib"/libdf11.so "$lib"/libdf11.so.1 >/dev/null
test -f "$(pkg-config --with-path="$pc" --variable=includedir df11)/df11_c.h"

# 1. pkg-config
cc -std=c11 -Wall -Werror "$here/install_consumer/consumer.c" -o "$tmp/consumer_pc" \
  $(pkg-config --with-path="$pc" --cflags --libs df11) -Wl,-rpath,"$lib"
readelf -d "$tmp/consumer_pc" | grep -q 'NEEDED.*libdf11.so.1'
"$tmp/consumer_pc"

# 2. find_package(df11) -> df11::df11
cmake -S "$here/install_consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_RPATH="$lib" >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$tmp/cmake-build" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
"$tmp/cmake-build/consumer"
echo "install_test: pkg-config and find_package consumers built and ran"
