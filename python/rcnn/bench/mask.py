"""bench_mask: Mask R-CNN on the synthetic set, RoIAlign against RoI pooling (the Mask R-CNN
paper's ablation, tables 2c-2d), the FPN variant, and the box-only model beside them.

    python -m rcnn.bench.mask [--iters 1500] [--seeds 1 2 3] [--out output/bench/mask]

Trains and evaluates, with the same data, schedule and seeds:
- mask_roialign: the small Mask R-CNN, ROIAlign (AVE, HALF_PIXEL, sampling ratio 2) in the
  box head and the mask head;
- mask_roipooling: the same net with ROIPooling in both heads (swap_roi's twin);
- mask_fpn_roialign: the small FPN with a mask branch, PyramidROIAlign in both heads;
- roialign_ave: the box-only model with the box head's RoIAlign settings, for box AP and
  cost.
Prints mask AP, AP50, AP75, APs and box AP as mean +- std over seeds with training seconds
per iteration and test seconds per image, then times one training iteration (rcnn.bench.
train_cost) and inference per image (rcnn.bench.test_cost: detections, and masks pasted and
encoded) of the mask models against the box-only model, on one thread and in alternation,
and writes summary.json and ap.png (the layout of bench_detect's). Finished runs are kept.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("bench_mask")
BOX_ONLY = "roialign_ave"
VARIANTS = ("mask_roialign", "mask_roipooling", "mask_fpn_roialign", BOX_ONLY)
LABELS = {"mask_roialign": "Mask R-CNN, ROIAlign", "mask_roipooling": "Mask R-CNN, ROIPooling",
          "mask_fpn_roialign": "Mask R-CNN, FPN + PyramidROIAlign",
          BOX_ONLY: "Faster R-CNN (box only), ROIAlign"}
METRICS = ("mask_ap", "mask_ap50", "mask_ap75", "mask_aps", "ap", "ap50", "ap75")
METRIC_NAMES = {"mask_ap": "mask AP", "mask_ap50": "mask AP50", "mask_ap75": "mask AP75",
                "mask_aps": "mask AP small", "ap": "box AP", "ap50": "box AP50",
                "ap75": "box AP75"}


def one_thread(module: str, args: list[str], out: Path) -> dict:
    """`python -m module args --out out` in a one-thread process (OpenMP and OpenBLAS limited
    to 1 before Caffe loads); its JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", module, *args, "--out", str(out)], check=True,
                   env=env)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_mask", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--out", default="output/bench/mask")
    ap.add_argument("--no-cost", action="store_true", help="skip the one-thread timing")
    args = ap.parse_args(argv)
    from rcnn import models
    from rcnn.bench.detect import bar_chart, run, summarise
    from rcnn.datasets.synthetic import generate
    from rcnn.tools.common import setup_tool

    setup_tool()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generate(args.data, 800, 200)
    nets = models.write_small_models(out / "models", 5, args.variants)
    summary = {v: summarise([run(v, seed, args.iters, args.data, out, nets,
                                 models.SMALL_CONFIG) for seed in args.seeds], METRICS)
               for v in args.variants}
    columns = (*METRICS, "train_seconds_per_iter", "test_seconds_per_image")
    print(f"{'model':<36} " + " ".join(f"{METRIC_NAMES.get(m, m)[:15]:>15}" for m in columns))
    for v, s in summary.items():
        print(f"{LABELS[v]:<36} " + " ".join(
            f"{s[m]['mean']:>8.3f} +- {s[m]['std']:.3f}" if m in s else f"{'-':>15}"
            for m in columns))
    goals = {}
    if {"mask_roialign", "mask_roipooling"} <= summary.keys():
        goals["mask_ap75_roialign_minus_roipooling"] = (
            summary["mask_roialign"]["mask_ap75"]["mean"]
            - summary["mask_roipooling"]["mask_ap75"]["mean"])
    if {"mask_roialign", BOX_ONLY} <= summary.keys():
        goals["box_ap_mask_minus_box_only"] = (summary["mask_roialign"]["ap"]["mean"]
                                               - summary[BOX_ONLY]["ap"]["mean"])
        if not args.no_cost:
            timed = [v for v in (BOX_ONLY, "mask_roialign", "mask_fpn_roialign")
                     if v in summary]
            cost = one_thread("rcnn.bench.train_cost", ["--dataset", "default", "--data",
                                                        args.data, "--variants", *timed],
                              out / "train_cost_1thread.json")
            goals["train_iteration_ratio_1thread"] = (
                cost["variants"]["mask_roialign"]["ratio_to_first"])
            goals["train_cost_1thread"] = cost
            seed = args.seeds[0]
            model_args = [a for v in timed for a in (
                "--model", v, str(nets[v]["test"]),
                str(out / f"{v}_seed{seed}" / f"{v}_iter_{args.iters}.caffemodel"))]
            cost = one_thread("rcnn.bench.test_cost", ["--data", args.data, *model_args],
                              out / "test_cost_1thread.json")
            goals["test_image_ratio_1thread"] = (
                cost["variants"]["mask_roialign"]["ratio_to_first"])
            goals["test_cost_1thread"] = cost
    for k, v in goals.items():
        if not isinstance(v, dict):
            print(f"{k}: {v:+.3f}" if "minus" in k else f"{k}: x{v:.2f}")
    stats = json.loads((Path(args.data) / "synthetic.json").read_text())["stats"]
    (out / "summary.json").write_text(json.dumps(
        {"iters": args.iters, "seeds": args.seeds, "dataset": stats, "variants": summary,
         "goals": goals}, indent=1))
    bar_chart(summary, out / "ap.png",
              "Small Mask R-CNN on the synthetic set: RoIAlign vs RoI pooling", METRICS,
              METRIC_NAMES)
    log.info("wrote %s and %s", out / "summary.json", out / "ap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
