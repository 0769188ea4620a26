"""The detection benchmarks' bookkeeping: summaries over seeds, and the alternating timing of
training iterations."""
from __future__ import annotations

import pytest
from rcnn.bench.detect import DATASETS, METRICS, summarise
from rcnn.bench.train_cost import time_variants


def test_summarise_mean_and_std_of_every_metric_and_timing():
    runs = [{**{m: v for m in METRICS}, "train_seconds_per_iter": t}
            for v, t in ((0.2, 1.0), (0.4, 3.0))]
    s = summarise(runs)
    assert s["runs"] == runs
    assert s["aps"] == {"mean": pytest.approx(0.3), "std": pytest.approx(0.1)}
    assert s["train_seconds_per_iter"]["mean"] == pytest.approx(2.0)
    assert "test_seconds_per_image" not in s       # a run without it: left out, not zero


def test_multiscale_dataset_compares_single_level_with_fpn():
    data, config, variants, out, iters = DATASETS["multiscale"]
    assert config == "MULTISCALE_CONFIG" and any("fpn" in v for v in variants)
    assert iters == 2000 and DATASETS["default"][4] == 1500
    assert len(variants) == 2 and out != DATASETS["default"][3]


def test_time_variants_alternates_and_warms_up():
    calls = []

    class Solver:
        def __init__(self, name):
            self.name = name

        def step(self, n):
            calls.append((self.name, n))

    times = time_variants({"a": Solver("a"), "b": Solver("b")}, iters=3, warmup=2, rounds=2)
    assert calls == [("a", 2), ("b", 2), ("a", 3), ("b", 3), ("a", 3), ("b", 3)]
    assert [len(t) for t in times.values()] == [2, 2]
