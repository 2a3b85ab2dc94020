#!/usr/bin/env bash
# Installs what is missing, configures build/ (once) and builds it.
# Usage: scripts/build.sh [meson setup options ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# NuRaft (subprojects/nuraft.wrap) from the copy kept beside the project,
# never from the network: without the tarball the summary says
# "NuRaft: not found" and everything else builds as before.
nuraft_tarball=../shared/third_party/NuRaft-3.0.0.tar.gz
if [ -f "$nuraft_tarball" ] && [ ! -f subprojects/packagecache/NuRaft-3.0.0.tar.gz ]; then
  mkdir -p subprojects/packagecache
  cp "$nuraft_tarball" subprojects/packagecache/
fi
if [ ! -f build/build.ninja ]; then
  meson setup build --wrap-mode=nodownload "$@"
fi
ninja -C build
