#!/bin/sh
# Configure (once) and build libmominit in ./build (or $BUILD_DIR); extra arguments go to meson
# setup. Idempotent. Quiet when it works; prints the build log when it fails.
set -eu
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ -f "$dir/build.ninja" ]; then
    if [ $# -gt 0 ]; then
        meson configure "$dir" "$@" > "$log" 2>&1 || { cat "$log"; exit 1; }
    fi
else
    meson setup "$dir" "$@" > "$log" 2>&1 || { cat "$log"; exit 1; }
fi
ninja -C "$dir" > "$log" 2>&1 || { grep -E 'error|FAILED|warning' "$log" | head -50; exit 1; }
