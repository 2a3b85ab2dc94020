#!/usr/bin/env bash
# Installs seshat from the build directory into a staging root, then builds
# and runs a tiny outside program against the installed files through
# pkg-config only.
# Usage: install_consumer_test.sh <build-dir> <source-dir> <scratch-dir>
set -euo pipefail
build=$1 source=$2 scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
meson install -C "$build" --no-rebuild --destdir "$scratch/root" >"$scratch/install.log"

pcdir=$(dirname "$(find "$scratch/root" -name seshat-rocksdb.pc | head -n 1)")
[ -f "$pcdir/seshat.pc" ] || { echo "seshat.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$scratch/root"
flags=$(pkg-config --cflags --libs seshat-rocksdb)
libdir=$(pkg-config --libs-only-L seshat-rocksdb | awk '{print substr($1, 3)}')
echo "pkg-config seshat-rocksdb: $flags"
# The sources' own include directories must not be what makes this build.
case "$flags" in *"$source/include"*|*"$source/backends"*)
  echo "pkg-config points into the source tree"; exit 1;; esac
c++ -std=c++20 "$source/tests/consumer/consumer.cpp" $flags \
  -Wl,-rpath,"$libdir" -o "$scratch/consumer"
"$scratch/consumer" "$scratch/store"
