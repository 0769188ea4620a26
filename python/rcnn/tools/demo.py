r"""demo: draw a trained detector's detections on images into PNG files.

    python -m rcnn.tools.demo --net models/small/roialign/test.prototxt \
        --weights output/demo/model_iter_3000.caffemodel --data data/synthetic --count 6 \
        --cfg models/small/config.yml --out output/demo/detections.png

--weights must be a .caffemodel whose layers fit the net (checked before Caffe loads it: one
line and exit status 2 otherwise).

Large images: sliced inference (SAHI; rcnn.sliced). --slice SIZE runs each image with a side
over SIZE pixels as overlapping SIZE x SIZE windows at native resolution, one window at a time
through the net, and merges the windows' detections per class (a Mask R-CNN's masks pasted
at their windows); --slice-overlap F (a fraction of SIZE, default 0.25), --slice-full-image
(also the whole image, resized as usual), --slice-merge nms|greedy_nmm and --slice-merge-iou
(default 0.5) set the TEST.SLICE_* config keys.

    python -m rcnn.tools.demo --net models/small/roialign/test.prototxt \
        --weights output/demo/model_iter_3000.caffemodel --images aerial.jpg \
        --classes circle square triangle cross --cfg models/small/config.yml \
        --out output/demo/aerial.png --slice 512 --slice-merge greedy_nmm
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rcnn.sliced import add_slice_args, apply_slice_args
from rcnn.tools.common import (
    add_config_args,
    check_file,
    check_output_file,
    check_prototxt,
    load_config,
    run_tool,
    setup_tool,
)

log = logging.getLogger("demo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", nargs="*", default=[], help="image files")
    ap.add_argument("--data", help="or: a VOC-format folder or a COCO-format JSON (ground "
                                   "truth drawn in white)")
    ap.add_argument("--imageset", default="test", help="VOC: the image set or a list file")
    ap.add_argument("--image-root", type=Path, default=None,
                    help="COCO: the folder the JSON's file_names are relative to")
    ap.add_argument("--count", type=int, default=6, help="images taken from --data")
    ap.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                    help="the class names (background left out) to label --images with, "
                         "when no --data gives them")
    ap.add_argument("--thresh", type=float, default=0.5, help="score threshold")
    ap.add_argument("--out", required=True, help="PNG: a grid of all images")
    add_slice_args(ap)
    add_config_args(ap)
    args = ap.parse_args(argv)
    setup_tool()
    return run_tool(lambda: _demo(args), args.debug)


def _demo(args: argparse.Namespace) -> int:
    from rcnn.datasets import open_dataset
    from rcnn.pipeline import draw_detections_on
    from rcnn.weights import check_weights_fit_prototxt

    config = load_config(args)
    apply_slice_args(config, args)
    check_prototxt(args.net, "--net")
    check_output_file(args.out, "--out")
    check_weights_fit_prototxt(args.weights, args.net, config, "--weights")
    items = [(str(check_file(p, "--images")), None) for p in args.images]
    classes = ("__background__", *args.classes) if args.classes else None
    if args.data:
        imdb = open_dataset(args.data, args.imageset, args.image_root)
        classes = imdb.classes
        items += [(e["image"], e["boxes"]) for e in imdb.gt_roidb()[:args.count]]
    if not items:
        log.error("no images: give --images or --data")
        return 2
    draw_detections_on(config, Path(args.net), Path(args.weights), items, classes, args.thresh,
                       Path(args.out), args.gpu)
    return 0

if __name__ == "__main__":
    sys.exit(main())
