r"""test_net: detect on a VOC-format image set or a COCO-format JSON, evaluate, and write JSON
results. VOC data: VOC AP (07 11-point and area) and COCO-style AP computed here; COCO data:
pycocotools' COCOeval (AP, AP50, AP75, APs, APm, APl) as "mean", ours beside it. Means are
over the classes with test objects (absent classes: "absent_classes", AP -1). A bad input
file, or one of the wrong kind (--weights that are not a .caffemodel, or whose layers do not
fit the net), is one line and exit status 2; NaN or inf met by one of the net's Python
layers (weights of a diverged run) is one line naming the layer and exit status 3.

    python -m rcnn.tools.test_net --net models/small/roialign/test.prototxt \
        --weights output/run/model_iter_4000.caffemodel --data data/synthetic \
        --cfg models/small/config.yml --out output/run/results.json
    python -m rcnn.tools.test_net ... --data data/synthetic/test.json ...

Large images: sliced inference (SAHI; rcnn.sliced). --slice SIZE runs each image with a side
over SIZE pixels as overlapping SIZE x SIZE windows at native resolution, one window at a time
through the net, and merges the windows' detections per class; smaller images are run whole
as usual. --slice-overlap F (a fraction of SIZE, default 0.25), --slice-full-image (also the
whole image, resized as usual), --slice-merge nms|greedy_nmm and --slice-merge-iou (default
0.5) set the TEST.SLICE_* config keys; the results JSON records them under "slice". A
progress line per image gives its window count.

    python -m rcnn.tools.test_net --net models/small/roialign/test.prototxt \
        --weights output/run/model_iter_4000.caffemodel --data data/large \
        --cfg models/small/config.yml --out output/run/sliced.json --slice 512
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rcnn.sliced import add_slice_args, apply_slice_args
from rcnn.tools.common import (
    add_config_args,
    add_data_args,
    check_output_file,
    check_prototxt,
    load_config,
    run_tool,
    setup_tool,
)

log = logging.getLogger("test_net")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="test_net", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True, help="test prototxt")
    ap.add_argument("--weights", required=True,
                    help=".caffemodel whose layers fit the net's (as train_net writes it)")
    add_data_args(ap, "test")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--max-images", type=int, default=0, help="test on the first N only")
    ap.add_argument("--no-detections", action="store_true",
                    help="leave the per-image detections out of the JSON")
    add_slice_args(ap)
    add_config_args(ap)
    args = ap.parse_args(argv)
    setup_tool()
    return run_tool(lambda: _test(args), args.debug)


def _test(args: argparse.Namespace) -> int:
    from rcnn.pipeline import detect_and_evaluate, write_json
    from rcnn.weights import check_weights_fit_prototxt

    config = load_config(args)
    apply_slice_args(config, args)
    check_prototxt(args.net, "--net")
    check_output_file(args.out, "--out")
    check_weights_fit_prototxt(args.weights, args.net, config, "--weights")
    result = detect_and_evaluate(config, Path(args.net), Path(args.weights), args.data,
                                 args.imageset, args.max_images, not args.no_detections,
                                 args.gpu, args.image_root)
    write_json(result, Path(args.out))
    return 0

if __name__ == "__main__":
    sys.exit(main())
