#!/usr/bin/env bash
# Fetch BVLC Caffe's source into $BUILD_DIR/caffe.
#
# Default: Debian's source package `caffe` (bullseye), downloaded with apt-get through a private
# apt configuration that lives entirely under $BUILD_DIR/apt (the system's apt setup is never
# touched). Only the upstream tarball is used; its sha256 is checked against a pinned value.
#
# CAFFE_SRC=/path/to/caffe: copy (rsync) a checkout the user already has instead.
set -euo pipefail

BUILD_DIR=${BUILD_DIR:-$(pwd)/build}
DEST=$BUILD_DIR/caffe
CAFFE_DEB_VERSION=1.0.0+git20180821.99bd997
# sha256 of caffe_1.0.0+git20180821.99bd997.orig.tar.gz as published in Debian's archive.
CAFFE_ORIG_SHA256=${CAFFE_ORIG_SHA256:-e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c}

log() { echo "[fetch_caffe] $*"; }
die() {
    echo "[fetch_caffe] ERROR: $*" >&2
    echo "[fetch_caffe] Caffe's source can come from either of:" >&2
    echo "[fetch_caffe]   1. Debian's source package (default; needs apt-get and access to deb.debian.org)" >&2
    echo "[fetch_caffe]   2. your own checkout:  make CAFFE_SRC=/path/to/caffe" >&2
    exit 1
}

if [ -f "$DEST/.fetched" ]; then
    log "already fetched ($(cat "$DEST/.fetched")); skipping"
    exit 0
fi

if [ -n "${CAFFE_SRC:-}" ]; then
    [ -f "$CAFFE_SRC/src/caffe/proto/caffe.proto" ] || die "CAFFE_SRC=$CAFFE_SRC is not a Caffe checkout (no src/caffe/proto/caffe.proto)"
    log "using the checkout at $CAFFE_SRC"
    rm -rf "$DEST"; mkdir -p "$DEST"
    (cd "$CAFFE_SRC" && tar --exclude=./.git --exclude=./.build_release --exclude=./.build_debug -cf - .) | (cd "$DEST" && tar xf -)
    echo "CAFFE_SRC=$CAFFE_SRC" > "$DEST/.fetched"
    exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found"

APT=$BUILD_DIR/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/state" "$APT/parts" "$APT/prefs" "$APT/download"
cat > "$APT/sources.list" <<SRC
deb-src http://deb.debian.org/debian bullseye main
SRC
APT_OPTS=(
    -o "Dir::Etc::SourceList=$APT/sources.list"
    -o "Dir::Etc::SourceParts=$APT/parts"
    -o "Dir::Etc::Preferences=$APT/prefs/none"
    -o "Dir::Etc::PreferencesParts=$APT/prefs"
    -o "Dir::State=$APT/state"
    -o "Dir::State::Lists=$APT/lists"
    -o "Dir::State::status=$APT/state/status"
    -o "Dir::Cache=$APT/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
)
touch "$APT/state/status"
log "apt-get update (private configuration under $APT)"
apt-get -q "${APT_OPTS[@]}" update || die "apt-get update of the private bullseye deb-src entry failed"
log "apt-get source --download-only caffe=$CAFFE_DEB_VERSION-*"
DEB_VER=$(apt-cache "${APT_OPTS[@]}" showsrc caffe | awk '/^Version:/ {print $2}' | grep "^$CAFFE_DEB_VERSION-" | head -n1)
[ -n "$DEB_VER" ] || die "no source package caffe=$CAFFE_DEB_VERSION-* in bullseye"
(cd "$APT/download" && apt-get -q "${APT_OPTS[@]}" source --download-only "caffe=$DEB_VER") \
    || die "apt-get source caffe=$DEB_VER failed"

ORIG=$(ls "$APT/download"/caffe_"$CAFFE_DEB_VERSION".orig.tar.* 2>/dev/null | head -n1)
[ -n "$ORIG" ] || die "the upstream tarball is missing from $APT/download"
SUM=$(sha256sum "$ORIG" | cut -d' ' -f1)
if [ "$SUM" != "$CAFFE_ORIG_SHA256" ]; then
    die "sha256 of $(basename "$ORIG") is $SUM, expected $CAFFE_ORIG_SHA256"
fi
log "sha256 ok: $SUM"
rm -rf "$DEST" "$DEST.tmp"; mkdir -p "$DEST.tmp"
tar -xf "$ORIG" -C "$DEST.tmp"
# The tarball may or may not wrap the tree in one top-level folder.
ROOT=$(dirname "$(dirname "$(dirname "$(dirname "$(find "$DEST.tmp" -maxdepth 5 -path '*/src/caffe/proto/caffe.proto' | head -n1)")")")")
[ -n "$ROOT" ] && [ "$ROOT" != . ] || die "the tarball does not hold Caffe's source"
mv "$ROOT" "$DEST"; rm -rf "$DEST.tmp"
[ -f "$DEST/src/caffe/proto/caffe.proto" ] || die "the tarball does not hold Caffe's source"
echo "debian caffe=$DEB_VER $(basename "$ORIG") sha256=$SUM" > "$DEST/.fetched"
log "Caffe source in $DEST"
