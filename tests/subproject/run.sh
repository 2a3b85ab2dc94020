#!/usr/bin/env bash
# seshat as a meson subproject: a parent project (tests/subproject/meson.build,
# with tests/consumer/consumer.cpp) gets seshat's libraries and nothing else
# (no adapter, example, test or benchmark, nothing installed), builds and
# runs; asked with -Dseshat:<option>=enabled, the adapter, kv_node and the
# tests are there too.
# Usage: run.sh <source-dir> <scratch-dir> <compiler> [adapter ...]
# <compiler> may be a command with a launcher ("ccache g++"); each adapter
# (canonical_raft, ...) is a meson option of seshat whose library
# seshat-<adapter, with - for _> must appear when asked for.
set -euo pipefail
source=$1 scratch=$2 compiler=$3
shift 3
rm -rf "$scratch"
mkdir -p "$scratch/parent/subprojects"
cp "$source/tests/subproject/meson.build" "$source/tests/consumer/consumer.cpp" "$scratch/parent/"
ln -s "$source" "$scratch/parent/subprojects/seshat"

targets() {  # the names of the targets a configured build dir defines, sorted
  meson introspect "$1" --targets |
    python3 -c 'import json, sys; print(" ".join(sorted(t["name"] for t in json.load(sys.stdin))))'
}

export CXX=$compiler
# Only what the parent asked for: the two backend libraries, and its program.
meson setup --wrap-mode=forcefallback "$scratch/build" "$scratch/parent" >"$scratch/setup.log" ||
  { cat "$scratch/setup.log"; exit 1; }
got=$(targets "$scratch/build")
want="consumer seshat-leveldb seshat-rocksdb"
[ "$got" = "$want" ] || { echo "as a subproject seshat defines: $got (want: $want)"; exit 1; }
installed=$(meson introspect "$scratch/build" --installed)
[ "$installed" = "{}" ] || { echo "as a subproject seshat installs: $installed"; exit 1; }
echo "as a subproject: targets $got, nothing installed"
ninja -C "$scratch/build" >"$scratch/build.log" || { cat "$scratch/build.log"; exit 1; }
"$scratch/build/consumer" "$scratch/store"

# Asked for, the rest is there (configured, not built).
options=(-Dseshat:tests=enabled)
want=(storage_tests)
for adapter in "$@"; do
  options+=("-Dseshat:$adapter=enabled")
  want+=("seshat-${adapter//_/-}")
  if [ "$adapter" = canonical_raft ]; then  # examples/kv_node runs on it
    options+=(-Dseshat:examples=enabled)
    want+=(kv_node)
  fi
done
meson setup --wrap-mode=forcefallback "${options[@]}" "$scratch/build-asked" "$scratch/parent" \
  >"$scratch/setup-asked.log" || { cat "$scratch/setup-asked.log"; exit 1; }
got=$(targets "$scratch/build-asked")
for t in "${want[@]}"; do
  case " $got " in *" $t "*) ;; *) echo "asked ${options[*]}, yet no target $t: $got"; exit 1;; esac
done
echo "asked ${options[*]}: targets $got"
