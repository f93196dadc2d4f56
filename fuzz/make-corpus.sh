#!/bin/sh
# Regenerate the committed seed corpus fuzz/corpus/ from the generator (fuzz/make_corpus.c).
# Usage: fuzz/make-corpus.sh [BUILD_DIR]   (default: build)
# Run it after a deliberate change of the checkpoint format, then commit the corpus; the
# corpus-golden test fails until then.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
ninja -C "$build" fuzz/make_corpus
rm -f "$here"/corpus/ok-* "$here"/corpus/bad-* "$here"/corpus/unsup-*
mkdir -p "$here/corpus"
"$build/fuzz/make_corpus" "$here/corpus"
ls -l "$here/corpus"
