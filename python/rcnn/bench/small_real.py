"""bench_small_real: does the detector generalise on a small real dataset? Today's recipe
against the augmented, normalised one, on aerial photographs of tree crowns (rcnn.bench.trees:
one 2299 x 2472 image to train on, another of 1249 x 1035 held out), from scratch.

    python -m rcnn.bench.small_real [--iters 2000] [--seeds 1 2 3] [--recipes today augmented]
                                    [--out output/bench/small_real]

Recipes (the small FPN, models/small/multiscale.yml, Adam, lr x 0.1 at 75 % of the run):
- today: how a new user trains today: the training image cut by hand into 400 x 400 tiles,
  each tile resized to 384, horizontal flips only (fpn_roialign), 2000 iterations.
- augmented: the whole training image, trained on as random 400 x 400 windows at native
  resolution with scale jitter, flips both ways, 90-degree turns and colour jitter
  (models/small/small_real.yml), BatchNorm in the backbone (fpn_roialign_bn), and the
  longer schedule training from scratch with normalisation asks for (He et al. 2019,
  "Rethinking ImageNet Pre-training"): 4000 iterations.
- augmented_nobn (optional): windows and augmentation without BatchNorm, 2000 iterations.
--iters sets every recipe's iterations instead.

Each run is evaluated on the held-out image's 400 x 400 tiles (AP50 and AP[.5:.95], VOC
data scored as COCO does), on the training image's tiles (the train-vs-held-out gap), and,
when the recipe slices, on the whole held-out image by sliced inference. Prints mean +- std
over seeds, writes <out>/summary.json and <out>/small_real_ap.png. Finished runs are kept and
skipped when run again.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench_small_real")
ROOT = Path(__file__).resolve().parents[3]
PRESET = ROOT / "models" / "small" / "small_real.yml"
RECIPES: dict[str, dict[str, Any]] = {
    "today": {"variant": "fpn_roialign", "augmented": False, "iters": 2000,
              "label": "today: hand-cut tiles, flips"},
    "augmented": {"variant": "fpn_roialign_bn", "augmented": True, "iters": 4000,
                  "label": "windows + augmentation + BatchNorm"},
    "augmented_nobn": {"variant": "fpn_roialign", "augmented": True, "iters": 2000,
                       "label": "windows + augmentation, no BatchNorm"},
}
# (name, folder kind, image set): the evaluations of every run
EVALUATIONS = (("heldout", "tiles", "test"), ("train", "tiles", "train"))
METRICS = ("ap50", "ap")


def recipe_config(name: str, seed: int):
    from rcnn.config import load
    from rcnn.models import MULTISCALE_CONFIG

    sources: list[Any] = [MULTISCALE_CONFIG]
    if RECIPES[name]["augmented"]:
        sources.append(PRESET)
    return load(*sources, {"RNG_SEED": seed})


def run(name: str, seed: int, iters: int | None, data: dict[str, Path], out: Path,
        nets: dict[str, dict[str, Path]]) -> dict[str, float]:
    """One recipe trained with one seed and evaluated: {"<evaluation>_<metric>": value},
    "train_seconds". Evaluations already in the run's folder are read back."""
    from rcnn.pipeline import TrainSpec, detect_and_evaluate, train, write_json
    from rcnn.training import latest_state

    recipe = RECIPES[name]
    iters = iters or recipe["iters"]
    d = out / f"{name}_{iters}it_seed{seed}"
    config = recipe_config(name, seed)
    net = nets[recipe["variant"]]
    spec = TrainSpec(net=net["train"], data=data["images" if recipe["augmented"] else "tiles"],
                     out=d, iters=iters, prefix=name, stepsize=int(iters * 0.75),
                     display=250)
    weights = spec.final_weights()
    timing = d / "timing.json"
    if not weights.is_file():
        t = time.monotonic()
        train(config, TrainSpec(**{**spec.__dict__, "resume": latest_state(d, name)}))
        timing.write_text(json.dumps({"train_seconds": time.monotonic() - t}))
    row: dict[str, float] = json.loads(timing.read_text()) if timing.is_file() else {}
    evaluations = list(EVALUATIONS)
    if config.TEST.SLICE_SIZE:
        evaluations.append(("heldout_sliced", "images", "test"))
    for evaluation, kind, imageset in evaluations:
        path = d / f"results_{evaluation}.json"
        if not path.is_file():
            write_json(detect_and_evaluate(config, net["test"], weights, data[kind], imageset,
                                           with_detections=False), path)
        mean = json.loads(path.read_text())["mean"]
        row.update({f"{evaluation}_{m}": float(mean[m]) for m in METRICS})
    row["gap_ap50"] = row["train_ap50"] - row["heldout_ap50"]
    log.info("%s seed %d: %s", name, seed, {k: round(v, 3) for k, v in row.items()})
    return row


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {"runs": rows, **{k: {"mean": float(np.mean([r[k] for r in rows])),
                                 "std": float(np.std([r[k] for r in rows]))} for k in keys}}


def chart(summary: dict[str, Any], path: Path) -> None:
    """bench.detect's bar chart of the recipes' train and held-out figures."""
    from rcnn.bench.detect import bar_chart

    names = {"train_ap50": "train tiles AP50", "heldout_ap50": "held-out AP50",
             "heldout_ap": "held-out AP[.5:.95]"}
    bar_chart({RECIPES[name]["label"]: s for name, s in summary.items()}, path,
              "Tree crowns (NEON YELL), trained from scratch on one image",
              tuple(names), names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_small_real", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=None,
                    help="iterations of every recipe (default: each recipe's own)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--recipes", nargs="+", default=["today", "augmented"],
                    choices=list(RECIPES))
    ap.add_argument("--data", type=Path, default=Path("data/trees"))
    ap.add_argument("--out", type=Path, default=Path("output/bench/small_real"))
    args = ap.parse_args(argv)
    from rcnn.bench.trees import prepare
    from rcnn.models import write_small_models
    from rcnn.tools.common import setup_tool

    setup_tool()
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare(args.data)
    nets = write_small_models(args.out / "models", 2,
                              sorted({RECIPES[r]["variant"] for r in args.recipes}))
    summary = {name: summarise([run(name, seed, args.iters, data, args.out, nets)
                                for seed in args.seeds]) for name in args.recipes}
    keys = [k for k in ("train_ap50", "heldout_ap50", "heldout_ap", "gap_ap50",
                        "heldout_sliced_ap50", "heldout_sliced_ap", "train_seconds")
            if any(k in s for s in summary.values())]
    print(f"{'recipe':<40} " + " ".join(f"{k:>20}" for k in keys))
    for name, s in summary.items():
        print(f"{RECIPES[name]['label']:<40} " + " ".join(
            f"{s[k]['mean']:>11.3f} +- {s[k]['std']:<6.3f}" if k in s else f"{'-':>20}"
            for k in keys))
    if "today" in summary:
        base = summary["today"]
        for name, s in summary.items():
            if name != "today":
                ratio = s["heldout_ap50"]["mean"] / max(base["heldout_ap50"]["mean"], 1e-9)
                print(f"{name}: held-out AP50 x{ratio:.2f} today's (goal >= 4), gap "
                      f"{s['gap_ap50']['mean']:.3f} vs {base['gap_ap50']['mean']:.3f} "
                      f"(goal <= half)")
    iters = {name: args.iters or RECIPES[name]["iters"] for name in args.recipes}
    (args.out / "summary.json").write_text(json.dumps(
        {"iters": iters, "seeds": args.seeds, "recipes": summary}, indent=1))
    chart(summary, args.out / "small_real_ap.png")
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'small_real_ap.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
