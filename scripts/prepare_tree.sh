#!/usr/bin/env bash
# Make (or update) a patched Caffe tree for one build variant:
#   1. copy the fetched source into TREE (once);
#   2. apply proto/*.patch in order, idempotently (an applied patch is reported and skipped);
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

changed=0
for p in "$ROOT"/proto/*.patch; do
    name=$(basename "$p")
    if patch -d "$TREE" -p1 -R --dry-run -s -f < "$p" >/dev/null 2>&1; then
        log "$name: already applied"
    elif patch -d "$TREE" -p1 --dry-run -s -f < "$p" >/dev/null 2>&1; then
        patch -d "$TREE" -p1 -s -f --no-backup-if-mismatch < "$p"
        log "$name: applied"
        changed=1
    else
        echo "[prepare_tree] ERROR: $name applies neither forwards nor backwards to $TREE" >&2
        echo "[prepare_tree] (is CAFFE_SRC a different Caffe version? try 'make clean')" >&2
        exit 1
    fi
done
[ $changed = 1 ] || log "all patches already applied; nothing changed"

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
