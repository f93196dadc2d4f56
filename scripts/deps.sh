#!/bin/sh
# Install what libmominit needs to build and test, on Debian/Ubuntu, only if missing.
# Idempotent: does nothing when every package is installed. Extra package names may be given as
# arguments (for example clang valgrind for the CI checks).
set -eu
pkgs="gcc g++ meson ninja-build pkgconf libopenblas-dev liblapack-dev libcmocka-dev zlib1g-dev python3-numpy abigail-tools openmpi-bin libopenmpi-dev $*"
missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing packages:$missing (install them with your package manager)" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing:$missing" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
