"""bench_detect: ROIPooling against ROIAlign in detection accuracy on the synthetic data, and
single-level ROIAlign against FPN + PyramidROIAlign on the multi-scale synthetic data.

    python -m rcnn.bench.detect [--iters 1500] [--seeds 1 2 3] [--out output/bench/detect]
    python -m rcnn.bench.detect --dataset multiscale    # 2000 iterations by default
                                                        # -> output/bench/detect_multiscale

Trains and evaluates the small Faster R-CNN with each variant (same data, schedule and
seeds), then prints AP50, AP75, AP[.5:.95] and AP for small / medium / large objects as
mean +- std over seeds, with the training seconds per iteration and test seconds per image,
draws a bar chart and writes JSON. Finished runs are kept and skipped when run again.
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
MULTISCALE_VARIANTS = ("roialign_ms", "fpn_roialign")
LABELS = {"roipooling": "ROIPooling", "roialign": "ROIAlign (defaults)",
          "roialign_ave": "ROIAlign AVE half-pixel sr2",
          "roialign_ms": "single-level ROIAlign", "fpn_roialign": "FPN + PyramidROIAlign"}
METRICS = ("ap50", "ap75", "ap", "aps", "apm", "apl")
METRIC_NAMES = {"ap50": "AP50", "ap75": "AP75", "ap": "AP[.5:.95]", "aps": "AP small",
                "apm": "AP medium", "apl": "AP large"}
# Per dataset (= synthetic preset): its default folder, config, variants, output folder
# and iterations.
DATASETS = {"default": ("data/synthetic", "SMALL_CONFIG", VARIANTS, "output/bench/detect",
                        1500),
            "multiscale": ("data/synthetic_multiscale", "MULTISCALE_CONFIG",
                           MULTISCALE_VARIANTS, "output/bench/detect_multiscale", 2000)}


def run(variant: str, seed: int, iters: int, data: str, out: Path,
        nets: dict[str, dict[str, Path]], base_config: dict) -> dict:
    """One variant trained with one seed and evaluated: its mean AP figures (a Mask R-CNN's
    mask figures too, as mask_ap, mask_ap50, ...), training seconds per iteration and test
    seconds per image (kept in the run's timing.json, since a run found finished is not
    timed again)."""
    from rcnn.config import load
    from rcnn.pipeline import TrainSpec, train_and_evaluate

    d = out / f"{variant}_seed{seed}"
    spec = TrainSpec(net=nets[variant]["train"], data=data, out=d, iters=iters, prefix=variant,
                     stepsize=int(iters * 0.75), display=250)
    config = load(base_config, {"RNG_SEED": seed})
    t = time.monotonic()
    result = train_and_evaluate(config, spec, nets[variant]["test"], d / "results.json",
                                with_detections=False, reuse_results=True)
    log.info("%s seed %d: %.0f s", variant, seed, time.monotonic() - t)
    timing = d / "timing.json"
    if result.seconds.get("train", 0) > 0 and result.seconds.get("test", 0) > 0:
        timing.write_text(json.dumps({
            "train_seconds_per_iter": result.seconds["train"] / iters,
            "test_seconds_per_image": result.results["seconds_per_image"]}))
    mask = {f"mask_{k}": v for k, v in result.results.get("mask", {}).get("mean", {}).items()}
    return {**result.results["mean"], **mask,
            **(json.loads(timing.read_text()) if timing.is_file() else {})}


def summarise(runs: list[dict], metrics: tuple[str, ...] = METRICS) -> dict:
    """mean and std over seeds of each metric and timing the runs have."""
    keys = [*metrics, "train_seconds_per_iter", "test_seconds_per_image"]
    return {"runs": runs, **{k: {"mean": float(np.mean([r[k] for r in runs])),
                                 "std": float(np.std([r[k] for r in runs]))}
                             for k in keys if all(k in r for r in runs)}}


def bar_chart(summary: dict, out: Path, title: str, metrics: tuple[str, ...] = METRICS,
              names: dict[str, str] = METRIC_NAMES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    width = 0.8 / len(summary)
    metrics = [m for m in metrics if all(m in s for s in summary.values())]
    x = np.arange(len(metrics))
    for i, (variant, s) in enumerate(summary.items()):
        means = [s[m]["mean"] for m in metrics]
        stds = [s[m]["std"] for m in metrics]
        bars = ax.bar(x + (i - (len(summary) - 1) / 2) * width, means, width, yerr=stds,
                      capsize=3, label=LABELS.get(variant, variant))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, [names[m] for m in metrics])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"mean +- std over {len(next(iter(summary.values()))['runs'])} seeds")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_detect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=None,
                    help="default: 1500 (default set), 2000 (multiscale set)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--dataset", default="default", choices=list(DATASETS),
                    help="default: the synthetic set, RoI layer variants; multiscale: the "
                         "multi-scale set, single-level ROIAlign vs FPN + PyramidROIAlign")
    ap.add_argument("--variants", nargs="+", default=None,
                    choices=[*VARIANTS, *MULTISCALE_VARIANTS],
                    help="default: the dataset's variants")
    ap.add_argument("--data", default=None, help="default: data/synthetic[_multiscale]")
    ap.add_argument("--out", default=None, help="default: output/bench/detect[_multiscale]")
    args = ap.parse_args(argv)
    from rcnn import models
    from rcnn.datasets.synthetic import generate, preset
    from rcnn.tools.common import setup_tool

    setup_tool()
    data_dir, config_name, variants, out_dir, iters = DATASETS[args.dataset]
    args.iters = args.iters or iters
    data = args.data or data_dir
    variants = args.variants or list(variants)
    out = Path(args.out or out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generate(data, 800, 200, preset(args.dataset))
    nets = models.write_small_models(out / "models", 5, variants)
    summary = {variant: summarise([run(variant, seed, args.iters, data, out, nets,
                                       getattr(models, config_name))
                                   for seed in args.seeds])
               for variant in variants}
    print(f"{'variant':<30} " + " ".join(f"{METRIC_NAMES[m]:>15}" for m in METRICS)
          + f" {'train s/iter':>15} {'test s/image':>15}")
    for variant, s in summary.items():
        print(f"{LABELS[variant]:<30} " + " ".join(
            f"{s[m]['mean']:>8.3f} +- {s[m]['std']:.3f}"
            for m in (*METRICS, "train_seconds_per_iter", "test_seconds_per_image") if m in s))
    stats = json.loads((Path(data) / "synthetic.json").read_text())["stats"]
    (out / "summary.json").write_text(json.dumps(
        {"iters": args.iters, "seeds": args.seeds, "dataset": stats, "variants": summary},
        indent=1))
    title = ("Small Faster R-CNN on the synthetic set: RoI layer variants"
             if args.dataset == "default" else
             "Multi-scale synthetic set: single-level ROIAlign vs FPN + PyramidROIAlign")
    bar_chart(summary, out / "ap.png", title)
    log.info("wrote %s and %s", out / "summary.json", out / "ap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
