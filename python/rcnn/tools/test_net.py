"""test_net: detect on a VOC-format image set, evaluate, and write JSON results.

    python -m rcnn.tools.test_net --net models/small/roialign/test.prototxt \
        --weights output/run/model_iter_4000.caffemodel --data data/synthetic \
        --cfg models/small/config.yml --out output/run/results.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rcnn.tools.common import add_config_args, apply_config, setup_tool

log = logging.getLogger("test_net")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="test_net", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True, help="test prototxt")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True, help="VOC-format dataset folder")
    ap.add_argument("--imageset", default="test")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--max-images", type=int, default=0, help="test on the first N only")
    ap.add_argument("--no-detections", action="store_true",
                    help="leave the per-image detections out of the JSON")
    add_config_args(ap)
    args = ap.parse_args(argv)
    setup_tool()
    apply_config(args)

    import caffe

    from rcnn.data import open_dataset, set_device
    from rcnn.evaluation import evaluate
    from rcnn.testing import run_test

    for path in (args.net, args.weights):
        if not Path(path).is_file():
            log.error("%s: no such file", path)
            return 2
    device = set_device(args.gpu)
    imdb = open_dataset(args.data, args.imageset)
    roidb = imdb.gt_roidb()
    if args.max_images:
        roidb = roidb[:args.max_images]
    net = caffe.Net(args.net, caffe.TEST, weights=args.weights)
    log.info("testing %s on %d images of %s (%s)", args.weights, len(roidb), imdb.name, device)
    all_dets, sec = run_test(net, roidb, imdb.num_classes)
    metrics = evaluate(all_dets, roidb, imdb.classes)
    m = metrics["mean"]
    log.info("AP %.3f | AP50 %.3f | AP75 %.3f | VOC07 AP50 %.3f | %.3f s/image",
             m["ap"], m["ap50"], m["ap75"], m["voc07_ap50"], sec)
    for name, r in metrics["per_class"].items():
        log.info("  %-12s AP %.3f AP50 %.3f AP75 %.3f (%d objects)", name, r["ap"], r["ap50"],
                 r["ap75"], r["num_gt"])
    result = {"net": args.net, "weights": args.weights, "dataset": imdb.name,
              "num_images": len(roidb), "seconds_per_image": sec, **metrics}
    if not args.no_detections:
        result["detections"] = {
            e["index"]: [[imdb.classes[c], *map(float, d)] for c in range(1, imdb.num_classes)
                         for d in all_dets[c][i]] for i, e in enumerate(roidb)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
