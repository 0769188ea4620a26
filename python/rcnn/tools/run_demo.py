"""The main job (`make demo`): synthetic data, the small ROIAlign Mask R-CNN trained from
scratch on CPU, evaluated (box and mask AP), with JSON results, a picture of detections and
their masks, and a loss curve. Finished steps are skipped, an interrupted training run
resumes.

    python -m rcnn.tools.run_demo [--out output/demo] [--iters 3000] [--variant mask_roialign]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from rcnn.models import ALL_VARIANTS
from rcnn.tools.common import check_folder, run_tool, setup_tool
from rcnn.training import TrainingStopped

log = logging.getLogger("demo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="output/demo")
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--variant", default="mask_roialign", choices=list(ALL_VARIANTS),
                    help="a model of models/small/ (default mask_roialign; roialign: the "
                         "box-only Faster R-CNN)")
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--gpu", type=int, default=None)
    ap.add_argument("--debug", action="store_true",
                    help="on an error, show the traceback instead of one line")
    args = ap.parse_args(argv)
    setup_tool()
    return run_tool(lambda: _run(args), args.debug)


def _run(args: argparse.Namespace) -> int:
    from rcnn.config import load
    from rcnn.datasets import open_dataset
    from rcnn.datasets.synthetic import generate
    from rcnn.models import SMALL_CONFIG, write_small_models
    from rcnn.pipeline import TrainSpec, draw_detections_on, train_and_evaluate
    from rcnn.plots import plot_loss

    out = check_folder(args.out, "--out")
    check_folder(args.data, "--data")
    out.mkdir(parents=True, exist_ok=True)
    config = load(SMALL_CONFIG, {"RNG_SEED": args.seed})
    t = time.monotonic()
    generate(args.data, 800, 200)
    data_seconds = time.monotonic() - t
    # The variant's prototxts, generated into the output folder (the committed models/small/
    # holds the same files).
    nets = write_small_models(out / "models", num_classes=5, variants=[args.variant])
    nets = nets[args.variant]
    spec = TrainSpec(net=nets["train"], data=args.data, out=out, iters=args.iters,
                     prefix=args.variant, stepsize=int(args.iters * 0.75), display=100,
                     snapshot_iters=1000, gpu=args.gpu)
    try:
        run = train_and_evaluate(config, spec, nets["test"], out / "results.json")
    except TrainingStopped as e:
        log.error("%s", e)
        return e.exit_code
    imdb = open_dataset(args.data, "test")
    examples = [(e["image"], e["boxes"]) for e in imdb.gt_roidb()[:6]]
    draw_detections_on(config, nets["test"], run.weights, examples, imdb.classes, 0.5,
                       out / "detections.png", args.gpu)
    plot_loss(out / "loss_log.jsonl", out / "loss.png")
    times = {"data": data_seconds, **run.seconds}
    metrics = run.results["mean"]
    mask = run.results.get("mask", {}).get("mean")
    summary = {"variant": args.variant, "iterations": args.iters, "seconds": times,
               "metrics": metrics, **({"mask_metrics": mask} if mask else {}),
               "files": {k: str(out / f) for k, f in (
                   ("results", "results.json"), ("detections", "detections.png"),
                   ("loss_curve", "loss.png"), ("weights", run.weights.name))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if mask:
        log.info("mask AP50 %.3f, AP75 %.3f, AP[.5:.95] %.3f", mask["ap50"], mask["ap75"],
                 mask["ap"])
    log.info("box AP50 %.3f, AP75 %.3f, AP[.5:.95] %.3f | data %.0fs, train %.0fs, test %.0fs",
             metrics["ap50"], metrics["ap75"], metrics["ap"], times["data"], times["train"],
             times["test"])
    log.info("results in %s: summary.json, results.json, detections.png, loss.png", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
