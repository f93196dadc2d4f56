#!/bin/sh
# Install the built library into a temporary DESTDIR and build an out-of-tree C program against it
# with pkg-config, once shared and once static; both must run and print the library version.
# Usage: scripts/check-install.sh [build-dir]
# From `meson test` (suite 'install', abi/meson.build) MOMINIT_INSTALL_NO_REBUILD=1 is set: the
# build is already up to date there, and no ninja may run inside the build while tests do.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
no_rebuild=""
[ "${MOMINIT_INSTALL_NO_REBUILD:-0}" = 1 ] && no_rebuild="--no-rebuild"
meson install -C "$dir" --destdir "$tmp/dest" --quiet $no_rebuild
prefix=$(meson introspect "$dir" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
root="$tmp/dest$prefix"
pcfile=$(find "$root" -name mominit.pc | head -n 1)
[ -n "$pcfile" ] || { echo "mominit.pc was not installed"; exit 1; }
pcdir=$(dirname "$pcfile")
for f in include/mominit/mominit.h include/mominit/version.h; do
    [ -f "$root/$f" ] || { echo "missing $f"; exit 1; }
done
ls "$root"/lib*/libmominit.so.0 "$root"/lib*/*/libmominit.so.0 2>/dev/null | grep -q . ||
    { echo "libmominit.so.0 not installed"; exit 1; }
ls "$root"/lib*/libmominit.a "$root"/lib*/*/libmominit.a 2>/dev/null | grep -q . ||
    { echo "libmominit.a not installed"; exit 1; }
cat > "$tmp/user.c" <<'C'
#include <stdio.h>
#include <mominit/mominit.h>
int main(void)
{
    mom_rng *r = NULL;
    if (mom_rng_create(&r, 1, 0, NULL) != MOM_OK)
        return 1;
    printf("libmominit %s (%u), first draw %u\n", mom_version_string(), mom_version_number(),
           (unsigned)mom_rng_u32(r));
    mom_rng_destroy(r);
    return 0;
}
C
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/dest"
cc -o "$tmp/user-shared" "$tmp/user.c" $(pkg-config --cflags --libs mominit)
libdir=$(dirname "$(ls "$root"/lib*/libmominit.so.0 "$root"/lib*/*/libmominit.so.0 2>/dev/null | head -n 1)")
LD_LIBRARY_PATH="$libdir" "$tmp/user-shared"
# Static: the same pkg-config line, with libmominit taken from the archive.
static_libs=$(pkg-config --static --libs mominit | sed 's/-lmominit/-Wl,-Bstatic -lmominit -Wl,-Bdynamic/')
cc -o "$tmp/user-static" "$tmp/user.c" $(pkg-config --static --cflags mominit) $static_libs
"$tmp/user-static"
if ldd "$tmp/user-static" | grep -q libmominit; then
    echo "static build still links libmominit.so"; exit 1
fi
echo "install check ok: headers, libmominit.so.0, libmominit.a, mominit.pc; shared and static programs run"
