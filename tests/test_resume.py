"""Resume is exact: a run stopped at iteration 10 and resumed ends with the same weights, bit
for bit, as a run of 20 iterations straight (one thread, so that the arithmetic is
reproducible)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")


def one_thread_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    return env


def train(net: Path, data: Path, out: Path, iters: int, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "rcnn.tools.train_net", "--net", str(net), "--data",
                    str(data), "--cfg", CFG, "--set", "TRAIN.SCALES", "(160,)",
                    "--out", str(out), "--iters", str(iters), "--display", "5", *extra],
                   check=True, env=one_thread_env(), capture_output=True, text=True)


def weights(path: Path) -> dict[str, list[np.ndarray]]:
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {la.name: [np.asarray(b.data, np.float32) for b in la.blobs]
            for la in net.layer if la.blobs}


def max_abs_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and wa
    return max(float(np.abs(x - y).max()) for k in wa
               for x, y in zip(wa[k], wb[k], strict=True))


def losses(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "loss_log.jsonl").read_text().splitlines()]


def test_stopped_and_resumed_equals_straight(caffe, tmp_path):
    data = generate(tmp_path / "data", 6, 1, SyntheticSpec(seed=2))
    net = write_small_models(tmp_path / "models", 5, variants=["roialign"])["roialign"]["train"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(net, data, straight, 20)
    train(net, data, resumed, 10)
    train(net, data, resumed, 20, "--resume",
          str(resumed / "state" / "model_iter_10.solverstate"))
    a, b = losses(straight), losses(resumed)
    assert [r["iter"] for r in b] == list(range(1, 21))
    assert a == b
    diff = max_abs_difference(straight / "model_iter_20.caffemodel",
                              resumed / "model_iter_20.caffemodel")
    print(f"max abs weight difference after 20 vs 10 + 10 iterations: {diff}")
    assert diff == 0
    # and the weights did move: the comparison is not between two untrained nets
    assert max_abs_difference(resumed / "model_iter_10.caffemodel",
                              resumed / "model_iter_20.caffemodel") > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_caffe_step_seed_depends_on_seed_and_iteration(seed):
    from rcnn.training import caffe_step_seed

    assert caffe_step_seed(seed, 5) != caffe_step_seed(seed, 6)
    assert caffe_step_seed(seed, 5) != caffe_step_seed(seed + 1, 5)
    assert 0 <= caffe_step_seed(seed, 10 ** 9) < 2 ** 31
