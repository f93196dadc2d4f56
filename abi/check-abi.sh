#!/bin/sh
# ABI gate: compare the freshly built shared library with the committed abidw baseline.
#
#   1. abidiff --no-added-syms --drop-private-types --headers-dir2 INCLUDE_DIR BASELINE LIBRARY
#   2. abidiff --no-added-syms BASELINE LIBRARY
#
# FAILS ON ANY NON-ZERO EXIT of either. abidiff sets bit 8 (ABIDIFF_ABI_INCOMPATIBLE_CHANGE) only
# for removed symbols; a changed parameter type or a changed struct layout sets only bit 4
# (ABIDIFF_ABI_CHANGE), the same bit as harmless changes. With --no-added-syms, added functions
# are not reported, so any remaining change is a break (docs/abi.md, style.md item 17).
#
# Why two runs: with libabigail 2.2, the header filter of run 1 hides a change whose new type is
# defined outside the public headers (a member of the frozen struct mom_batch turned from size_t
# into uint32_t, whose typedef lives in <stdint.h>), and with a baseline that records source
# locations it also hid a size_t -> uint32_t parameter change. Run 2 needs no filter: the
# baseline was written with --drop-private-types, so the opaque handles' private structs are
# declarations only there and changes inside them are not reported. docs/abi.md lists what each
# run catches. Enum values are invisible to both (the API passes them as int): abi/constants.py
# checks them.
#
# Usage: abi/check-abi.sh BASELINE LIBRARY INCLUDE_DIR
# Exit: 0 identical ABI (additions allowed), 1 ABI change or error, 77 (skip) without abidiff.
set -u
baseline=$1 lib=$2 incdir=$3

if ! command -v abidiff >/dev/null 2>&1; then
    echo "SKIP: abidiff is not installed (Debian/Ubuntu package: abigail-tools)"
    exit 77
fi
if [ ! -f "$baseline" ]; then
    echo "FAIL: no ABI baseline at $baseline; generate it with scripts/abi-baseline.sh"
    exit 1
fi
if [ ! -f "$lib" ]; then
    echo "FAIL: library $lib does not exist"
    exit 1
fi
# Without DWARF, abidiff would compare symbol names only and miss every signature change.
if command -v readelf >/dev/null 2>&1 && ! readelf -S "$lib" | grep -q '\.debug_info'; then
    echo "FAIL: $lib has no debug information (build it with -g); the gate needs DWARF types"
    exit 1
fi

status=0
report=""
run() {
    label=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        status=1
        report="$report
FAIL ($label): $* exited with status $rc:"
        [ $((rc & 1)) -ne 0 ] && report="$report
  - abidiff error (bit 1)"
        [ $((rc & 2)) -ne 0 ] && report="$report
  - usage error (bit 2)"
        [ $((rc & 4)) -ne 0 ] && report="$report
  - ABI change (bit 4): a changed signature, type or struct layout"
        [ $((rc & 8)) -ne 0 ] && report="$report
  - incompatible ABI change (bit 8): a removed function or variable"
        report="$report

$out
"
    fi
}
run "public headers" abidiff --no-added-syms --drop-private-types --headers-dir2 "$incdir" "$baseline" "$lib"
run "unfiltered" abidiff --no-added-syms "$baseline" "$lib"

if [ $status -eq 0 ]; then
    echo "ok: the ABI of $(basename "$lib") matches the baseline $(basename "$baseline") (additions allowed)"
    exit 0
fi
echo "$report"
echo "If this break is deliberate, follow docs/abi.md (bump abi_major, new version node,"
echo "regenerate the baseline with scripts/abi-baseline.sh); otherwise restore the old signature"
echo "and add the new one under a new name."
exit 1
