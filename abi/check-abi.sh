#!/bin/sh
# ABI gate: compare the freshly built shared library with the committed abidw baseline.
#
#   abidiff --no-added-syms --drop-private-types --headers-dir2 INCLUDE_DIR BASELINE LIBRARY
#
# FAILS ON ANY NON-ZERO EXIT of abidiff. abidiff sets bit 8 (ABIDIFF_ABI_INCOMPATIBLE_CHANGE)
# only for removed symbols; a changed parameter type, a reordered struct field or a changed enum
# value sets only bit 4 (ABIDIFF_ABI_CHANGE), the same bit as harmless changes. With
# --no-added-syms, added functions are not reported, so any remaining change is a break
# (docs/abi.md, style.md item 17).
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

out=$(abidiff --no-added-syms --drop-private-types --headers-dir2 "$incdir" "$baseline" "$lib" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
    echo "ok: the ABI of $(basename "$lib") matches the baseline $(basename "$baseline") (additions allowed)"
    exit 0
fi
echo "FAIL: abidiff exited with status $rc:"
[ $((rc & 1)) -ne 0 ] && echo "  - abidiff error (bit 1)"
[ $((rc & 2)) -ne 0 ] && echo "  - usage error (bit 2)"
[ $((rc & 4)) -ne 0 ] && echo "  - ABI change (bit 4): a changed signature, type, enum value or struct layout"
[ $((rc & 8)) -ne 0 ] && echo "  - incompatible ABI change (bit 8): a removed function or variable"
echo
echo "$out"
echo
echo "If this break is deliberate, follow docs/abi.md (bump abi_major, new version node,"
echo "regenerate the baseline with scripts/abi-baseline.sh); otherwise restore the old signature"
echo "and add the new one under a new name."
exit 1
