#!/usr/bin/env bash
# ROIAlign variants of py-faster-rcnn's VGG16 and ZF end-to-end models (MIT licence, see
# models/pascal_voc/README.md), made with swap_roi from the published prototxts in
# ../shared/fixtures/py-faster-rcnn. Settings: AVE pooling, half-pixel alignment, 2 x 2 samples
# (Detectron2's RoIAlign). Run from the repository root after `make`.
set -euo pipefail
SRC=${PY_FASTER_RCNN:-../shared/fixtures/py-faster-rcnn}/models/pascal_voc
[ -d "$SRC" ] || { echo "no $SRC (set PY_FASTER_RCNN=/path/to/py-faster-rcnn)" >&2; exit 1; }
. build/env.sh
for net in VGG16 ZF; do
    out=models/pascal_voc/$net/faster_rcnn_end2end_roialign
    mkdir -p "$out"
    for phase in train test; do
        python -m rcnn.tools.swap_roi "$SRC/$net/faster_rcnn_end2end/$phase.prototxt" \
            "$out/$phase.prototxt" --to ROIAlign --set pool=AVE --set alignment=HALF_PIXEL \
            --set sampling_ratio=2
    done
done
