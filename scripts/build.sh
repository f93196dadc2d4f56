#!/bin/sh
# Configure (once) and build libmominit in ./build (or $BUILD_DIR). Idempotent.
set -eu
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
else
    meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
