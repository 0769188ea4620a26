"""train_cost: the cost of one training iteration (forward, backward, Adam update; data
layer and Python layers included) of several variants at the same input size, timed in
alternation so that both see the same machine load.

    python -m rcnn.bench.train_cost [--variants roialign_ms fpn_roialign] [--iters 40]
        [--warmup 5] [--rounds 4] [--dataset multiscale] [--out output/bench/train_cost.json]

Each variant's solver runs `warmup` untimed iterations, then `rounds` x `iters` timed ones,
the variants taking turns round by round on the same images (the multi-scale set and its
config, or with --dataset default the synthetic set and the small config). Prints and
writes the median seconds per iteration and the ratio to the first variant.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("train_cost")


def solvers(variants: list[str], data: str, config, tmp: Path) -> dict:
    """A fresh solver per variant, its net fed the data's training roidb."""
    import caffe

    from rcnn.config import activate
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.models import write_small_models
    from rcnn.runtime import seed_everything
    from rcnn.training import write_solver

    nets = write_small_models(tmp / "models", 5, variants)
    roidb = train_roidb(open_dataset(data, "train"), config.TRAIN.USE_FLIPPED)
    out = {}
    for v in variants:
        seed_everything(config.RNG_SEED)
        activate(config)
        solver = caffe.get_solver(str(write_solver(None, nets[v]["train"], tmp / v, v)))
        next(la for la in solver.net.layers if hasattr(la, "set_roidb")).set_roidb(roidb)
        out[v] = solver
    return out


def time_variants(solvers_by_variant: dict, iters: int, warmup: int,
                  rounds: int) -> dict[str, list[float]]:
    """Seconds per iteration of each round, per variant; the variants take turns."""
    for solver in solvers_by_variant.values():
        solver.step(warmup)
    times: dict[str, list[float]] = {v: [] for v in solvers_by_variant}
    for _ in range(rounds):
        for v, solver in solvers_by_variant.items():
            t = time.perf_counter()
            solver.step(iters)
            times[v].append((time.perf_counter() - t) / iters)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["roialign_ms", "fpn_roialign"])
    ap.add_argument("--dataset", default="multiscale", choices=["default", "multiscale"],
                    help="the synthetic preset, with its config (default: SMALL_CONFIG)")
    ap.add_argument("--data", default=None,
                    help="default: data/synthetic_multiscale or data/synthetic")
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default="output/bench/train_cost.json")
    args = ap.parse_args(argv)
    from rcnn.bench.timing import write_timings
    from rcnn.config import load
    from rcnn.datasets.synthetic import generate, preset
    from rcnn.models import MULTISCALE_CONFIG, SMALL_CONFIG
    from rcnn.tools.common import setup_tool

    setup_tool()
    multiscale = args.dataset == "multiscale"
    args.data = args.data or ("data/synthetic_multiscale" if multiscale else "data/synthetic")
    generate(args.data, 800, 200, preset(args.dataset))
    config = load(MULTISCALE_CONFIG if multiscale else SMALL_CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        times = time_variants(solvers(args.variants, args.data, config, Path(tmp)),
                              args.iters, args.warmup, args.rounds)
    write_timings(times, "iter", args.out,
                  input=f"{config.TRAIN.SCALES[0]} x {config.TRAIN.SCALES[0]}",
                  iters_per_round=args.iters, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
