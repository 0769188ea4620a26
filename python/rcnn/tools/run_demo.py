"""The main job (`make demo`): synthetic data, the small ROIAlign Faster R-CNN trained from
scratch on CPU, evaluated, with JSON results, a picture of detections and a loss curve.
Finished steps are skipped, an interrupted training run resumes.

    python -m rcnn.tools.run_demo [--out output/demo] [--iters 3000] [--variant roialign]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from rcnn.tools.common import setup_tool

log = logging.getLogger("demo")
ROOT = Path(__file__).resolve().parents[3]


def latest_state(out: Path, prefix: str) -> Path | None:
    states = sorted((out / "state").glob(f"{prefix}_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return states[-1] if states else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "output" / "demo"))
    ap.add_argument("--data", default=str(ROOT / "data" / "synthetic"))
    ap.add_argument("--variant", default="roialign", help="roialign, roialign_ave, roipooling")
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--gpu", type=int, default=None)
    args = ap.parse_args(argv)
    setup_tool()

    from rcnn.datasets.synthetic import generate
    from rcnn.models import write_small_models
    from rcnn.plots import plot_loss
    from rcnn.tools import demo, test_net, train_net

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = str(ROOT / "models" / "small" / "config.yml")
    times: dict[str, float] = {}
    t = time.monotonic()
    generate(args.data, 800, 200)
    times["data"] = time.monotonic() - t
    nets = write_small_models(ROOT / "models" / "small", num_classes=5)[args.variant]
    prefix = args.variant
    final = out / f"{prefix}_iter_{args.iters}.caffemodel"
    gpu = [] if args.gpu is None else ["--gpu", str(args.gpu)]
    common = ["--cfg", cfg_file, "--set", "RNG_SEED", str(args.seed), *gpu]
    t = time.monotonic()
    if final.is_file():
        log.info("trained model present: %s", final)
    else:
        resume = latest_state(out, prefix)
        rc = train_net.main(["--net", str(nets["train"]), "--data", args.data, "--iters",
                             str(args.iters), "--stepsize", str(int(args.iters * 0.75)),
                             "--out", str(out), "--prefix", prefix, "--display", "100",
                             "--snapshot-iters", "1000", *common,
                             *(["--resume", str(resume)] if resume else [])])
        if rc:
            return rc
    times["train"] = time.monotonic() - t
    t = time.monotonic()
    results = out / "results.json"
    rc = test_net.main(["--net", str(nets["test"]), "--weights", str(final), "--data",
                        args.data, "--out", str(results), *common])
    if rc:
        return rc
    times["test"] = time.monotonic() - t
    demo.main(["--net", str(nets["test"]), "--weights", str(final), "--data", args.data,
               "--count", "6", "--out", str(out / "detections.png"), *common])
    plot_loss(out / "loss_log.jsonl", out / "loss.png")
    metrics = json.loads(results.read_text())["mean"]
    summary = {"variant": args.variant, "iterations": args.iters, "seconds": times,
               "metrics": metrics, "files": {k: str(out / f) for k, f in (
                   ("results", "results.json"), ("detections", "detections.png"),
                   ("loss_curve", "loss.png"), ("weights", final.name))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("AP50 %.3f, AP75 %.3f, AP[.5:.95] %.3f | data %.0fs, train %.0fs, test %.0fs",
             metrics["ap50"], metrics["ap75"], metrics["ap"], times["data"], times["train"],
             times["test"])
    log.info("results in %s: summary.json, results.json, detections.png, loss.png", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
