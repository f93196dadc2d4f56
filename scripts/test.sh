#!/bin/sh
# The README's test command: install what is missing, build, run the whole test suite, and print
# one closing line "N passed, N failed, N skipped" counting individual test cases.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
dir=${BUILD_DIR:-build}
rc=0
meson test -C "$dir" --print-errorlogs "$@" || rc=$?
python3 scripts/summarize-tests.py "$dir/meson-logs/testlog.json"
exit $rc
