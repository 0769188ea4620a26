"""bench_detect: ROIPooling against ROIAlign in detection accuracy on the synthetic data.

    python -m rcnn.bench.detect [--iters 1500] [--seeds 1 2 3] [--out output/bench/detect]

Trains and evaluates the small Faster R-CNN with each RoI variant (same data, schedule and
seeds), then prints AP50, AP75 and AP[.5:.95] as mean +- std over seeds, draws a bar chart and
writes JSON. Finished runs are kept and skipped when run again.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_detect")
VARIANTS = ("roipooling", "roialign", "roialign_ave")
LABELS = {"roipooling": "ROIPooling", "roialign": "ROIAlign (defaults)",
          "roialign_ave": "ROIAlign AVE half-pixel sr2"}
METRICS = ("ap50", "ap75", "ap")


def run(variant: str, seed: int, iters: int, data: str, out: Path,
        nets: dict[str, dict[str, Path]]) -> dict:
    """One variant trained with one seed and evaluated: its mean AP figures."""
    from rcnn.config import load
    from rcnn.models import SMALL_CONFIG
    from rcnn.pipeline import TrainSpec, train_and_evaluate

    d = out / f"{variant}_seed{seed}"
    spec = TrainSpec(net=nets[variant]["train"], data=data, out=d, iters=iters, prefix=variant,
                     stepsize=int(iters * 0.75), display=250)
    config = load(SMALL_CONFIG, {"RNG_SEED": seed})
    t = time.monotonic()
    result = train_and_evaluate(config, spec, nets[variant]["test"], d / "results.json",
                                with_detections=False, reuse_results=True)
    log.info("%s seed %d: %.0f s", variant, seed, time.monotonic() - t)
    return result.results["mean"]


def bar_chart(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    width = 0.8 / len(summary)
    x = np.arange(len(METRICS))
    for i, (variant, s) in enumerate(summary.items()):
        means = [s[m]["mean"] for m in METRICS]
        stds = [s[m]["std"] for m in METRICS]
        bars = ax.bar(x + (i - (len(summary) - 1) / 2) * width, means, width, yerr=stds,
                      capsize=3, label=LABELS.get(variant, variant))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, ["AP50", "AP75", "AP[.5:.95]"])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"mean +- std over {len(next(iter(summary.values()))['runs'])} seeds")
    ax.set_title("Small Faster R-CNN on the synthetic set: RoI layer variants")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_detect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--out", default="output/bench/detect")
    args = ap.parse_args(argv)
    from rcnn.datasets.synthetic import generate
    from rcnn.models import write_small_models
    from rcnn.tools.common import setup_tool

    setup_tool()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generate(args.data, 800, 200)
    nets = write_small_models(out / "models", 5, args.variants)
    summary: dict[str, dict] = {}
    for variant in args.variants:
        runs = [run(variant, seed, args.iters, args.data, out, nets) for seed in args.seeds]
        summary[variant] = {"runs": runs, **{m: {"mean": float(np.mean([r[m] for r in runs])),
                                                 "std": float(np.std([r[m] for r in runs]))}
                                             for m in METRICS}}
    print(f"{'variant':<30} {'AP50':>15} {'AP75':>15} {'AP[.5:.95]':>15}")
    for variant, s in summary.items():
        print(f"{LABELS[variant]:<30} " + " ".join(
            f"{s[m]['mean']:>8.3f} +- {s[m]['std']:.3f}" for m in METRICS))
    stats = json.loads((Path(args.data) / "synthetic.json").read_text())["stats"]
    (out / "summary.json").write_text(json.dumps(
        {"iters": args.iters, "seeds": args.seeds, "dataset": stats, "variants": summary},
        indent=1))
    bar_chart(summary, out / "ap.png")
    log.info("wrote %s and %s", out / "summary.json", out / "ap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
