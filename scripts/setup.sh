#!/usr/bin/env bash
# Installs the Debian packages seshat builds, tests and benchmarks with,
# skipping those already installed. Used by the README's commands and CI.
# Usage: scripts/setup.sh [extra-package ...]
set -euo pipefail

packages=(g++ meson ninja-build pkg-config
          librocksdb-dev libleveldb-dev libboost-serialization-dev
          doctest-dev libbenchmark-dev libraft-dev libuv1-dev python3
          cmake libasio-dev
          clang libclang-rt-14-dev
          prometheus  # promtool: the test of the Prometheus text (tests/promtool_check.sh)
          "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "seshat setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
