r"""train_net: train a Faster R-CNN end to end on a VOC-format folder or a COCO-format JSON.

    python -m rcnn.tools.train_net --net models/small/roialign/train.prototxt \
        --data data/synthetic --cfg models/small/config.yml --iters 2000 --out output/run
    python -m rcnn.tools.train_net --net models/small/roialign/train.prototxt \
        --data data/synthetic/train.json --cfg models/small/config.yml --iters 2000 \
        --out output/run

Writes <out>/<prefix>_iter_N.caffemodel (bbox_pred un-normalised), <out>/loss_log.jsonl and
resumable state in <out>/state/. Ctrl-C saves a snapshot and exits 130; a non-finite loss,
or NaN / inf reaching one of the net's Python layers (a diverging run), saves the last good
weights and exits 3, naming the iteration (and the layer). A missing, unreadable or malformed
input is one line naming the file and exit status 2 (--debug shows the traceback), and so is
a file of the wrong kind, told by its content before Caffe reads it: a .caffemodel or a
prototxt as --resume, a .solverstate as --weights, a solver state whose .caffemodel is gone,
weights whose layers do not have the net's shapes (named, with both shapes).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rcnn.tools.common import (
    add_config_args,
    add_data_args,
    check_folder,
    check_prototxt,
    load_config,
    run_tool,
    setup_tool,
)

log = logging.getLogger("train_net")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_net", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True, help="train prototxt")
    ap.add_argument("--solver", help="solver prototxt template (default: Adam, lr 0.001)")
    add_data_args(ap, "train")
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument("--lr", type=float, help="base_lr override")
    ap.add_argument("--stepsize", type=int, help="multiply lr by 0.1 every STEPSIZE iters")
    ap.add_argument("--weights", help="initial weights (.caffemodel); layers are matched by "
                                      "name and must have the net's shapes")
    ap.add_argument("--resume", help="a .solverstate from <out>/state/ to continue from (its "
                                     ".caffemodel beside it)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--prefix", default="model", help="snapshot file prefix")
    ap.add_argument("--display", type=int, default=50, help="progress every N iterations")
    ap.add_argument("--snapshot-iters", type=int, default=0)
    add_config_args(ap)
    args = ap.parse_args(argv)
    setup_tool()
    return run_tool(lambda: _train(args), args.debug)


def _train(args: argparse.Namespace) -> int:
    from rcnn.pipeline import TrainSpec, train
    from rcnn.training import TrainingStopped
    from rcnn.weights import check_solverstate_file, check_weights_file, solverstate_weights

    config = load_config(args)
    check_prototxt(args.net, "--net")
    if args.solver:
        check_prototxt(args.solver, "--solver", "SolverParameter")
    # The kinds of file here; whether they fit the net once it is built (rcnn.training).
    if args.weights:
        check_weights_file(args.weights, "--weights")
    if args.resume:
        state = check_solverstate_file(args.resume, "--resume")
        if state.kind == "solverstate":
            solverstate_weights(state, "--resume")
    check_folder(args.out, "--out")
    spec = TrainSpec(net=Path(args.net), data=args.data, out=Path(args.out), iters=args.iters,
                     imageset=args.imageset, image_root=args.image_root, prefix=args.prefix,
                     solver=Path(args.solver) if args.solver else None, lr=args.lr,
                     stepsize=args.stepsize, weights=args.weights, resume=args.resume,
                     display=args.display, snapshot_iters=args.snapshot_iters, gpu=args.gpu)
    try:
        path = train(config, spec)
    except TrainingStopped as e:
        log.error("%s", e)
        return e.exit_code
    log.info("done: %s", path)
    return 0

if __name__ == "__main__":
    sys.exit(main())
