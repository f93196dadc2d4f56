#!/bin/sh
# Check the exported symbols of the shared library:
#  1. every exported (defined, dynamic) symbol starts with mom_ and carries a MOMINIT_ version;
#  2. the exported names equal the names in the version script;
#  3. the names in the version script equal the functions declared MOM_API in the headers.
# Usage: check-symbols.sh LIBRARY.so VERSION_SCRIPT INCLUDE_DIR LIST_API_SCRIPT
set -eu
lib=$1 map=$2 incdir=$3 listapi=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only --with-symbol-versions "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
    grep -v '^MOMINIT_[0-9.]*$' > "$tmp/raw" || true
status=0
if grep -v '^mom_[a-z0-9_]*@@*MOMINIT_[0-9][0-9.]*$' "$tmp/raw" > "$tmp/bad"; then
    echo "exported symbols without the mom_ prefix or a MOMINIT_ version node:"
    cat "$tmp/bad"
    status=1
fi
sed 's/@.*//' "$tmp/raw" | sort -u > "$tmp/exported"
sed -n 's/^[[:space:]]*\(mom_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u > "$tmp/map"
sh "$listapi" "$incdir" > "$tmp/api"
if ! diff -u "$tmp/map" "$tmp/exported" > "$tmp/d1"; then
    echo "version script (-) and exported symbols (+) differ:"
    cat "$tmp/d1"
    status=1
fi
if ! diff -u "$tmp/api" "$tmp/map" > "$tmp/d2"; then
    echo "public headers (-) and version script (+) differ:"
    cat "$tmp/d2"
    status=1
fi
n=$(wc -l < "$tmp/exported")
if [ $status -eq 0 ]; then
    echo "ok: $n exported symbols, all mom_-prefixed, versioned and declared in the headers"
fi
exit $status
