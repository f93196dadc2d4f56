#!/bin/sh
# Print, sorted, the names of the functions declared with MOM_API in the public headers.
# Usage: scripts/list-api.sh [include-dir]
dir=${1:-$(dirname "$0")/../include/mominit}
cat "$dir"/*.h | grep -oE '^MOM_API [^;(]*\bmom_[a-z0-9_]+\(' | grep -oE 'mom_[a-z0-9_]+\($' |
    tr -d '(' | sort -u
