"""test_cost: seconds per image of inference (im_detect and per-class NMS; for a Mask R-CNN
also its masks, pasted and RLE-encoded, as test_net makes them) of trained models on the
same images, timed in alternation so that all see the same machine load.

    python -m rcnn.bench.test_cost --model NAME TEST_PROTOTXT WEIGHTS [--model ...]
        [--data data/synthetic] [--images 50] [--rounds 3] [--out test_cost.json]

Prints and writes (rcnn.bench.timing) the median seconds per image of each model and the
ratio to the first.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

log = logging.getLogger("test_cost")


def time_models(models: dict[str, tuple[str, str]], images: list[np.ndarray],
                rounds: int, config) -> dict[str, list[float]]:
    """Seconds per image of each round, per model; the models take turns, one pass over the
    images each (after one untimed warm-up image)."""
    import caffe

    from rcnn.config import activate, pixel_means
    from rcnn.datasets.masks import encode_rle
    from rcnn.inference import detections_per_class, im_detect, im_segment, mask_branch_start

    activate(config)
    nets = {k: caffe.Net(net, caffe.TEST, weights=w) for k, (net, w) in models.items()}
    means = pixel_means(config)

    def one(net, im):
        dets = detections_per_class(*im_detect(net, im, config.TEST, means), config.TEST)
        if mask_branch_start(net) is not None:
            im_segment(net, dets, *im.shape[:2], config.TEST.MASK_SCORE_THRESH,
                       encode=encode_rle)

    for net in nets.values():
        one(net, images[0])
    times: dict[str, list[float]] = {k: [] for k in nets}
    for _ in range(rounds):
        for k, net in nets.items():
            t = time.perf_counter()
            for im in images:
                one(net, im)
            times[k].append((time.perf_counter() - t) / len(images))
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="test_cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs=3, action="append", required=True,
                    metavar=("NAME", "TEST_PROTOTXT", "WEIGHTS"))
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="output/bench/test_cost.json")
    args = ap.parse_args(argv)
    from rcnn.bench.timing import write_timings
    from rcnn.config import load
    from rcnn.datasets import open_dataset
    from rcnn.datasets.images import read_image_bgr
    from rcnn.models import SMALL_CONFIG
    from rcnn.tools.common import setup_tool

    setup_tool()
    roidb = open_dataset(args.data, "test").gt_roidb()[:args.images]
    images = [read_image_bgr(e["image"], (e["width"], e["height"])) for e in roidb]
    models = {name: (net, weights) for name, net, weights in args.model}
    times = time_models(models, images, args.rounds, load(SMALL_CONFIG))
    write_timings(times, "image", args.out, images=len(images), rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
