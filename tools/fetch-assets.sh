#!/bin/sh
# Fetch the dashboard's third-party assets into www/vendor/ (gitignored), idempotently.
#
#   sh tools/fetch-assets.sh
#
# uPlot (MIT, https://github.com/leeoniya/uPlot) comes from the npm registry
# through npm itself, pinned to one version and checked against the SHA-256
# sums below, so the files pistatsd serves are exactly the reviewed ones and
# the dashboard never asks a CDN for anything.  Files already present with the
# right sums are left alone; anything else is replaced.
#
# Offline machines: set PISTATSD_UPLOT_TARBALL to a copy of uplot-<version>.tgz
# (from `npm pack uplot@<version>` elsewhere); it is checked the same way.
#
# Upgrading: change UPLOT_VERSION, run `npm pack uplot@NEW` in a temp dir,
# review, then record the new sums (sha256sum) below.
set -eu
cd "$(dirname "$0")/.."

UPLOT_VERSION=1.6.32
UPLOT_TARBALL_SHA256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
DEST=www/vendor/uplot
# "<path in the npm package> <sha256>", installed under $DEST by basename.
UPLOT_FILES="
package/dist/uPlot.iife.min.js 19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f
package/dist/uPlot.min.css df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04
package/LICENSE 8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd
"

# The file list without blank lines.
files() {
    echo "$UPLOT_FILES" | sed '/^$/d'
}

die() {
    echo "fetch-assets: $*" >&2
    exit 1
}

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    else
        die "need sha256sum, shasum or openssl to verify downloads"
    fi
}

# Succeeds when every file is in $DEST with its recorded sum.
installed() {
    files | {
        while read -r path sum; do
            file="$DEST/${path##*/}"
            if [ ! -f "$file" ] || [ "$(sha256 "$file")" != "$sum" ]; then
                return 1
            fi
        done
    }
}

if installed; then
    echo "uPlot $UPLOT_VERSION already in $DEST"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

if [ -n "${PISTATSD_UPLOT_TARBALL:-}" ]; then
    [ -f "$PISTATSD_UPLOT_TARBALL" ] || die "PISTATSD_UPLOT_TARBALL=$PISTATSD_UPLOT_TARBALL: no such file"
    cp "$PISTATSD_UPLOT_TARBALL" "$TMP/uplot.tgz"
else
    command -v npm >/dev/null 2>&1 ||
        die "npm not found: install Node.js and npm (Debian: apt-get install npm), or set PISTATSD_UPLOT_TARBALL to a copy of uplot-$UPLOT_VERSION.tgz"
    echo "fetching uplot@$UPLOT_VERSION from the npm registry"
    (cd "$TMP" && npm pack --silent "uplot@$UPLOT_VERSION" >npm.out 2>npm.log) || {
        cat "$TMP/npm.log" >&2
        die "npm pack uplot@$UPLOT_VERSION failed (offline? registry unreachable? see above)"
    }
    name=$(tail -n 1 "$TMP/npm.out")
    [ -f "$TMP/$name" ] || die "npm pack did not produce a tarball (got '$name')"
    mv "$TMP/$name" "$TMP/uplot.tgz"
fi

got=$(sha256 "$TMP/uplot.tgz")
[ "$got" = "$UPLOT_TARBALL_SHA256" ] ||
    die "uplot-$UPLOT_VERSION.tgz has sha256 $got, expected $UPLOT_TARBALL_SHA256: refusing to install"

mkdir -p "$TMP/x" "$DEST"
paths=$(files | cut -d' ' -f1)
# shellcheck disable=SC2086 # the paths contain no spaces
tar -xzf "$TMP/uplot.tgz" -C "$TMP/x" $paths || die "cannot extract uPlot from the tarball"

files | while read -r path sum; do
    got=$(sha256 "$TMP/x/$path")
    [ "$got" = "$sum" ] || die "$path has sha256 $got, expected $sum"
    name=${path##*/}
    # Dot-prefixed temporary name: the static server never serves dotfiles.
    cp "$TMP/x/$path" "$DEST/.$name.tmp"
    chmod 644 "$DEST/.$name.tmp"
    mv -f "$DEST/.$name.tmp" "$DEST/$name"
done

installed || die "installation in $DEST did not verify"
echo "installed uPlot $UPLOT_VERSION in $DEST"
