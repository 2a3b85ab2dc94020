#!/usr/bin/env bash
# Installs seshat from the build directory into a staging root, then builds
# and runs a tiny outside program (tests/consumer/) against the installed
# files only: through pkg-config, or through CMake's find_package.
#
# Usage: install_consumer_test.sh <build-dir> <source-dir> <scratch-dir> pkg-config
#        install_consumer_test.sh <build-dir> <source-dir> <scratch-dir> cmake <compiler> [component ...]
# <compiler> may be a command with a launcher ("ccache g++"); the components
# (canonical_raft, ...) are the adapters the CMake package must also offer.
set -euo pipefail
build=$1 source=$2 scratch=$3 kind=$4
shift 4
rm -rf "$scratch"
mkdir -p "$scratch"
meson install -C "$build" --no-rebuild --destdir "$scratch/root" >"$scratch/install.log"
root=$scratch/root

# Nothing installed may point back into the source or build tree.
if grep -rlI -e "$source/include" -e "$source/backends" -e "$build" "$root" >"$scratch/leaks" 2>/dev/null; then
  echo "installed files that name the source or build tree:"; cat "$scratch/leaks"; exit 1
fi

case $kind in
pkg-config)
  pcdir=$(dirname "$(find "$root" -name seshat-rocksdb.pc | head -n 1)")
  for pc in seshat seshat-rocksdb seshat-leveldb; do
    [ -f "$pcdir/$pc.pc" ] || { echo "$pc.pc was not installed in $pcdir"; exit 1; }
  done
  # A library is named (-lleveldb), never given by its absolute path: the
  # path of the machine that built seshat is not the user's.
  if grep -nE '^Libs(\.private)?:.*(^|[[:space:]])/' "$pcdir"/seshat*.pc; then
    echo "a pkg-config file links a library by absolute path (above)"; exit 1
  fi
  export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$root"
  flags=$(pkg-config --cflags --libs seshat-rocksdb seshat-leveldb)
  libdir=$(pkg-config --libs-only-L seshat-rocksdb | awk '{print substr($1, 3)}')
  echo "pkg-config seshat-rocksdb seshat-leveldb: $flags"
  c++ -std=c++20 "$source/tests/consumer/consumer.cpp" $flags \
    -Wl,-rpath,"$libdir" -o "$scratch/consumer"
  "$scratch/consumer" "$scratch/store"
  ;;
cmake)
  compiler=($1)
  shift
  launcher=()
  [ ${#compiler[@]} -gt 1 ] && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="${compiler[0]}")
  config=$(find "$root" -name seshatConfig.cmake | head -n 1)
  [ -n "$config" ] || { echo "seshatConfig.cmake was not installed"; exit 1; }
  # <root>/<prefix>/<libdir>/cmake/seshat/seshatConfig.cmake
  prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
  # The README's snippet, built as a second program of the consumer.
  awk '/^## Using it/ { part = 1 } part && /^```cpp/ { code = 1; next }
       code && /^```/ { exit } code' "$source/README.md" >"$scratch/readme_example.cpp"
  [ -s "$scratch/readme_example.cpp" ] || { echo "README.md: no cpp block under 'Using it'"; exit 1; }
  components=$(IFS=';'; echo "$*")
  prefixes="$root$prefix"
  # seshat::nuraft links the user's NuRaft: staged here as NuRaft's own
  # install lays it out (include/libnuraft/, lib/libnuraft.a).
  if [[ " $* " == *" nuraft "* ]]; then
    : "${SESHAT_NURAFT_INCLUDE_DIR:?the nuraft component needs SESHAT_NURAFT_INCLUDE_DIR}"
    : "${SESHAT_NURAFT_LIBRARY:?the nuraft component needs SESHAT_NURAFT_LIBRARY}"
    mkdir -p "$scratch/nuraft/include" "$scratch/nuraft/lib"
    cp -r "$SESHAT_NURAFT_INCLUDE_DIR/libnuraft" "$scratch/nuraft/include/"
    # meson's archive is thin (it names its members' files): copy them in.
    (cd "$(dirname "$SESHAT_NURAFT_LIBRARY")" &&
      ar qcs "$scratch/nuraft/lib/libnuraft.a" $(ar t "$SESHAT_NURAFT_LIBRARY"))
    prefixes="$prefixes;$scratch/nuraft"
    # Without NuRaft where CMake looks, the component fails naming it.
    if cmake -S "$source/tests/consumer" -B "$scratch/cmake-no-nuraft" -G Ninja \
         -DCMAKE_CXX_COMPILER="${compiler[-1]}" -DCMAKE_PREFIX_PATH="$root$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
         -DEXTRA_COMPONENTS=nuraft >"$scratch/cmake-no-nuraft.log" 2>&1 ||
       ! grep -q "seshat::nuraft: needs libnuraft" "$scratch/cmake-no-nuraft.log"; then
      echo "find_package(seshat COMPONENTS nuraft) without NuRaft did not fail naming libnuraft:"
      cat "$scratch/cmake-no-nuraft.log"; exit 1
    fi
  fi
  cmake -S "$source/tests/consumer" -B "$scratch/cmake-build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="${compiler[-1]}" "${launcher[@]}" \
    -DCMAKE_PREFIX_PATH="$prefixes" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DREADME_EXAMPLE="$scratch/readme_example.cpp" -DEXTRA_COMPONENTS="$components" \
    >"$scratch/cmake-configure.log" || { cat "$scratch/cmake-configure.log"; exit 1; }
  # The package found must be the staged one.
  found=$(sed -n 's/^seshat_DIR:PATH=//p' "$scratch/cmake-build/CMakeCache.txt")
  [ "$found" = "$(dirname "$config")" ] ||
    { echo "find_package(seshat) found '$found', not the staged $(dirname "$config")"; exit 1; }
  echo "find_package(seshat) found $found"
  # A component that was not built fails find_package, naming it.
  if cmake -S "$source/tests/consumer" -B "$scratch/cmake-missing" -G Ninja \
       -DCMAKE_CXX_COMPILER="${compiler[-1]}" -DCMAKE_PREFIX_PATH="$root$prefix" \
       -DEXTRA_COMPONENTS=no_such_adapter >"$scratch/cmake-missing.log" 2>&1 ||
     ! grep -q "seshat::no_such_adapter: not built" "$scratch/cmake-missing.log"; then
    echo "find_package(seshat COMPONENTS no_such_adapter) did not fail naming it:"
    cat "$scratch/cmake-missing.log"; exit 1
  fi
  cmake --build "$scratch/cmake-build" >"$scratch/cmake-build.log" ||
    { cat "$scratch/cmake-build.log"; exit 1; }
  "$scratch/cmake-build/consumer" "$scratch/store"
  "$scratch/cmake-build/readme_example" "$scratch/readme-store"
  for component in "$@"; do
    "$scratch/cmake-build/links_$component" "$scratch/$component"
  done
  ;;
*) echo "install_consumer_test.sh: unknown kind '$kind' (pkg-config or cmake)" >&2; exit 2 ;;
esac
