"""test_net: detect on a VOC-format image set, evaluate, and write JSON results.

    python -m rcnn.tools.test_net --net models/small/roialign/test.prototxt \
        --weights output/run/model_iter_4000.caffemodel --data data/synthetic \
        --cfg models/small/config.yml --out output/run/results.json
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rcnn.tools.common import add_config_args, load_config, setup_tool

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
    config = load_config(args)

    from rcnn.pipeline import detect_and_evaluate, write_json

    for path in (args.net, args.weights):
        if not Path(path).is_file():
            log.error("%s: no such file", path)
            return 2
    result = detect_and_evaluate(config, Path(args.net), Path(args.weights), args.data,
                                 args.imageset, args.max_images, not args.no_detections,
                                 args.gpu)
    write_json(result, Path(args.out))
    return 0

if __name__ == "__main__":
    sys.exit(main())
