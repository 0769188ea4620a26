"""train_net: train a Faster R-CNN end to end on a VOC-format dataset.

    python -m rcnn.tools.train_net --net models/small/roialign/train.prototxt \
        --data data/synthetic --cfg models/small/config.yml --iters 2000 --out output/run

Writes <out>/<prefix>_iter_N.caffemodel (bbox_pred un-normalised), <out>/loss_log.jsonl and
resumable state in <out>/state/. Ctrl-C saves a snapshot and exits 130; a non-finite loss
saves the last good weights and exits 3.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rcnn.tools.common import add_config_args, apply_config, setup_tool

log = logging.getLogger("train_net")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_net", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True, help="train prototxt")
    ap.add_argument("--solver", help="solver prototxt template (default: Adam, lr 0.001)")
    ap.add_argument("--data", required=True, help="VOC-format dataset folder")
    ap.add_argument("--imageset", default="train")
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument("--lr", type=float, help="base_lr override")
    ap.add_argument("--stepsize", type=int, help="multiply lr by 0.1 every STEPSIZE iters")
    ap.add_argument("--weights", help="initial weights (.caffemodel)")
    ap.add_argument("--resume", help="a .solverstate from <out>/state/ to continue from")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--prefix", default="model", help="snapshot file prefix")
    ap.add_argument("--display", type=int, default=50, help="progress every N iterations")
    ap.add_argument("--snapshot-iters", type=int, default=0)
    add_config_args(ap)
    args = ap.parse_args(argv)
    setup_tool()
    apply_config(args)

    from rcnn.config import cfg
    from rcnn.data import open_dataset, seed_everything, set_device, train_roidb
    from rcnn.training import Trainer, TrainingStopped, write_solver

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.RNG_SEED)
    device = set_device(args.gpu)
    overrides: dict = {}
    if args.lr:
        overrides["base_lr"] = args.lr
    if args.stepsize:
        overrides.update(lr_policy="step", gamma=0.1, stepsize=args.stepsize)
    solver = write_solver(args.solver, args.net, out, args.prefix, overrides)
    roidb = train_roidb(open_dataset(args.data, args.imageset))
    log.info("training %s on %s for %d iterations (%s)", args.net, args.data, args.iters,
             device)
    trainer = Trainer(solver, roidb, out, args.prefix, args.weights, args.resume)
    try:
        path = trainer.train(args.iters, args.display, args.snapshot_iters)
    except TrainingStopped as e:
        log.error("%s", e)
        return e.exit_code
    log.info("done: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
