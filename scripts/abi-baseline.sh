#!/bin/sh
# (Re)generate the ABI baseline abi/libmominit.so.<abi_major>.abi that the 'abi' test suite
# compares every build with (abi/check-abi.sh), and abi/constants.txt, the pinned enum values and
# integer macros (abi/constants.py). Builds the shared library with debug information
# in a temporary build directory (the default buildtype, debugoptimized, has -g; -g is added
# explicitly anyway), then runs
#   abidw --drop-private-types --headers-dir include/mominit ...
# Installs abigail-tools with apt-get when abidw is missing.
#
# Regenerate the baseline only when the ABI is meant to change: after additions (optional, the
# gate allows them) or in the commit of a deliberate, SONAME-bumping break (docs/abi.md).
#
# Usage: scripts/abi-baseline.sh [--rev GIT-REV] [meson setup options...]
#   --rev REV  build the library from the committed tree REV (git archive) instead of the
#              working tree, e.g. --rev HEAD to leave uncommitted work out of the baseline.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
rev=""
if [ "${1:-}" = "--rev" ]; then
    [ $# -ge 2 ] || { echo "--rev needs a revision" >&2; exit 2; }
    rev=$2
    shift 2
fi

if ! command -v abidw >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "installing abigail-tools (abidw)" >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq abigail-tools >/dev/null ||
            { $SUDO apt-get update -qq >/dev/null &&
              DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq abigail-tools >/dev/null; }
    fi
    command -v abidw >/dev/null 2>&1 ||
        { echo "abidw not found: install abigail-tools" >&2; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$root
if [ -n "$rev" ]; then
    src="$tmp/src"
    mkdir "$src"
    git archive --format=tar "$rev" | tar -x -C "$src"
fi
major=$(sed -n 's/^abi_major *= *\([0-9][0-9]*\).*/\1/p' "$src/meson.build" | head -n 1)
[ -n "$major" ] || { echo "cannot read abi_major from meson.build" >&2; exit 1; }
out="$root/abi/libmominit.so.$major.abi"
meson setup "$tmp/build" "$src" -Dbuildtype=debugoptimized -Dc_args=-g -Dtests=false \
    -Dexamples=false -Dbench=false "$@" >/dev/null
ninja -C "$tmp/build" >/dev/null
lib="$tmp/build/lib/libmominit.so.$major"
[ -f "$lib" ] || { echo "build did not produce $lib" >&2; exit 1; }
readelf -S "$lib" | grep -q '\.debug_info' ||
    { echo "$lib has no debug information" >&2; exit 1; }

# --no-corpus-path / --no-comp-dir-path / --no-show-locs keep temporary paths and line numbers
# out of the file, so that regenerating an unchanged ABI gives an identical baseline.
abidw --drop-private-types --headers-dir "$src/include/mominit" \
    --no-corpus-path --no-comp-dir-path --no-show-locs \
    --out-file "$out.tmp" "$lib"
mv "$out.tmp" "$out"
n=$(grep -c '<elf-symbol name=.mom_' "$out" || true)
echo "wrote ${out#$root/}${rev:+ from $rev}: $n exported functions, SONAME libmominit.so.$major"

# The pinned enum values and integer macros, which abidiff cannot see (abi/constants.py).
python3 "$root/abi/constants.py" dump "$src/include/mominit" > "$root/abi/constants.txt.tmp"
mv "$root/abi/constants.txt.tmp" "$root/abi/constants.txt"
echo "wrote abi/constants.txt: $(wc -l < "$root/abi/constants.txt") pinned constants"
