#!/usr/bin/env bash
# Make (or update) a patched Caffe tree for one build variant:
#   1. copy the fetched source into TREE (once);
#   2. apply proto/*.patch in order to pristine copies of the files they touch, again only
#      when the patches changed (a stamp in TREE);
#   3. symlink every file under caffe_layers/ into the same place in TREE, so Caffe's Makefile
#      compiles our layers and tests, and `make` after an edit rebuilds only what changed.
# Usage: prepare_tree.sh SRC_TREE TREE
set -euo pipefail
SRC=$1
TREE=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "[prepare_tree] $*"; }

[ -f "$SRC/src/caffe/proto/caffe.proto" ] || { echo "[prepare_tree] ERROR: no Caffe source in $SRC" >&2; exit 1; }
if [ ! -f "$TREE/.copied" ]; then
    log "copying $SRC -> $TREE"
    rm -rf "$TREE"; mkdir -p "$TREE"
    (cd "$SRC" && tar --exclude=./.fetched -cf - .) | (cd "$TREE" && tar xf -)
    touch "$TREE/.copied"
fi

# The patches are applied as a stack to pristine files: the tree keeps a stamp (the patches'
# names and checksums); when it differs (a patch added or edited, or a tree from before the
# stamp), every file any patch touches is restored from SRC and all patches are applied again,
# in order. A later patch may so change what an earlier one added.
stamp_file="$TREE/.patches_applied"
stamp=$(cd "$ROOT/proto" && sha256sum ./*.patch)
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    log "all patches already applied; nothing changed"
else
    for rel in $(grep -h '^+++ b/' "$ROOT"/proto/*.patch | sed -e 's#^+++ b/##' -e 's#[[:space:]].*##' | sort -u); do
        if [ -f "$SRC/$rel" ]; then cp -p "$SRC/$rel" "$TREE/$rel"; else rm -f "$TREE/$rel"; fi
    done
    for p in "$ROOT"/proto/*.patch; do
        name=$(basename "$p")
        if ! patch -d "$TREE" -p1 --dry-run -s -f < "$p" >/dev/null 2>&1; then
            echo "[prepare_tree] ERROR: $name does not apply to $SRC" >&2
            echo "[prepare_tree] (is CAFFE_SRC a different Caffe version?)" >&2
            exit 1
        fi
        patch -d "$TREE" -p1 -s -f --no-backup-if-mismatch < "$p"
        log "$name: applied"
    done
    # The restored files keep SRC's old times; make must see them as changed.
    for rel in $(grep -h '^+++ b/' "$ROOT"/proto/*.patch | sed -e 's#^+++ b/##' -e 's#[[:space:]].*##' | sort -u); do
        [ -f "$TREE/$rel" ] && touch "$TREE/$rel"
    done
    echo "$stamp" > "$stamp_file"
fi

# Our layer sources: drop links whose target is gone, then (re)link every file.
find "$TREE/include" "$TREE/src" -type l -lname "$ROOT/caffe_layers/*" | while read -r l; do
    [ -e "$l" ] || { log "removing stale link ${l#"$TREE"/}"; rm -f "$l"; }
done
n=0
while IFS= read -r f; do
    rel=${f#"$ROOT/caffe_layers/"}
    mkdir -p "$TREE/$(dirname "$rel")"
    [ "$(readlink "$TREE/$rel" 2>/dev/null)" = "$f" ] || ln -sfn "$f" "$TREE/$rel"
    n=$((n + 1))
done < <(find "$ROOT/caffe_layers" -type f \( -name '*.hpp' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.cu' \) | sort)
log "$n source files from caffe_layers/ linked"
