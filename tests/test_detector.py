"""End to end: train a few iterations, snapshot, resume, stop cleanly, test, draw; and
py-faster-rcnn's own ZF end-to-end net trains one iteration with our layers."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("data"), 10, 4, SyntheticSpec(seed=5))


@pytest.fixture(scope="module")
def nets(tmp_path_factory, caffe):
    return write_small_models(tmp_path_factory.mktemp("models"), 5)


def test_generated_models_are_committed(nets):
    """models/small/ is what rcnn.models writes (regenerate with `make models`)."""
    for variant, paths in nets.items():
        for phase, p in paths.items():
            committed = ROOT / "models" / "small" / variant / f"{phase}.prototxt"
            assert committed.read_text() == p.read_text(), committed


def test_generated_config_is_committed_and_loads(tmp_path):
    from rcnn.models import SMALL_CONFIG, write_small_config

    written = write_small_config(tmp_path)
    assert (ROOT / "models" / "small" / "config.yml").read_text() == written.read_text()
    assert load(written) == load(SMALL_CONFIG)


def test_variants_differ_only_in_the_roi_layer(nets):
    a = nets["roialign"]["train"].read_text().splitlines()
    b = nets["roipooling"]["train"].read_text().splitlines()
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert diff == [('name: "small_faster_rcnn_roialign"', 'name: "small_faster_rcnn_roipooling"'),
                    ('  type: "ROIAlign"', '  type: "ROIPooling"')]


def test_train_snapshot_resume_test_demo(caffe, tiny_data, nets, tmp_path):
    from rcnn.plots import plot_loss
    from rcnn.tools import demo, test_net, train_net

    out = tmp_path / "run"
    args = ["--net", str(nets["roialign"]["train"]), "--data", str(tiny_data), "--cfg", CFG,
            "--out", str(out), "--display", "2", "--snapshot-iters", "3"]
    assert train_net.main([*args, "--iters", "4"]) == 0
    assert (out / "model_iter_3.caffemodel").is_file()
    assert (out / "model_iter_4.caffemodel").is_file()
    state = out / "state" / "model_iter_4.solverstate"
    assert state.is_file() and state.with_suffix(".data.json").is_file()
    assert train_net.main([*args, "--iters", "6", "--resume", str(state)]) == 0
    log = [json.loads(x) for x in (out / "loss_log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss_cls"]) for r in log)
    results = tmp_path / "results.json"
    assert test_net.main(["--net", str(nets["roialign"]["test"]), "--weights",
                          str(out / "model_iter_6.caffemodel"), "--data", str(tiny_data),
                          "--cfg", CFG, "--out", str(results)]) == 0
    r = json.loads(results.read_text())
    assert r["num_images"] == 4 and set(r["mean"]) >= {"ap", "ap50", "ap75", "voc07_ap50"}
    assert set(r["per_class"]) == {"circle", "square", "triangle", "cross"}
    assert len(r["detections"]) == 4
    png = tmp_path / "det.png"
    assert demo.main(["--net", str(nets["roialign"]["test"]), "--weights",
                      str(out / "model_iter_6.caffemodel"), "--data", str(tiny_data),
                      "--count", "2", "--thresh", "0", "--cfg", CFG, "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert plot_loss(out / "loss_log.jsonl", tmp_path / "loss.png").stat().st_size > 1000


def test_coco_json_trains_and_tests_with_cocoeval(caffe, tiny_data, nets, tmp_path):
    from rcnn.tools import test_net, train_net

    out = tmp_path / "run"
    assert train_net.main(["--net", str(nets["roialign"]["train"]), "--data",
                           str(tiny_data / "train.json"), "--cfg", CFG, "--out", str(out),
                           "--iters", "2"]) == 0
    results = tmp_path / "results.json"
    assert test_net.main(["--net", str(nets["roialign"]["test"]), "--weights",
                          str(out / "model_iter_2.caffemodel"), "--data",
                          str(tiny_data / "test.json"), "--cfg", CFG, "--out",
                          str(results)]) == 0
    r = json.loads(results.read_text())
    assert r["evaluation"] == "cocoeval" and r["num_images"] == 4
    assert set(r["mean"]) >= {"ap", "ap50", "ap75", "aps", "apm", "apl"}
    assert set(r["cocoeval_per_class"]) == {"circle", "square", "triangle", "cross"}
    assert set(r["ours_mean"]) >= {"ap", "voc07_ap50"}


class _StepThen:
    """Wraps a pycaffe solver: after `at` iterations, runs `action`."""

    def __init__(self, solver, at, action):
        self._solver, self._at, self._action = solver, at, action

    def step(self, n):
        self._solver.step(n)
        if self._solver.iter >= self._at:
            self._action(self._solver)

    def __getattr__(self, name):
        return getattr(self._solver, name)


def _trainer(caffe, tiny_data, nets, out):
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.training import Trainer, write_solver

    config = load(CFG)
    solver = write_solver(None, nets["roialign"]["train"], out, "m")
    activate(config)
    return Trainer(solver, train_roidb(open_dataset(tiny_data, "train"), True), out, "m",
                   config.TRAIN, seed=config.RNG_SEED)


@pytest.mark.parametrize("how", ["exception", "signal"])
def test_ctrl_c_saves_a_snapshot(caffe, tiny_data, nets, tmp_path, how):
    """Ctrl-C (SIGINT) during an iteration stops after it; a KeyboardInterrupt raised between
    iterations stops at once; either way a resumable snapshot is saved."""
    from rcnn.training import TrainingStopped

    trainer = _trainer(caffe, tiny_data, nets, tmp_path)
    handler = signal.getsignal(signal.SIGINT)

    def interrupt(_):
        if how == "signal":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            raise KeyboardInterrupt

    trainer.solver = _StepThen(trainer.solver, 2, interrupt)
    with pytest.raises(TrainingStopped) as e:
        trainer.train(10, display=1)
    assert e.value.exit_code == 130 and "interrupted at iteration 2" in str(e.value)
    assert (tmp_path / "m_iter_2.caffemodel").is_file()
    assert (tmp_path / "state" / "m_iter_2.solverstate").is_file()
    assert signal.getsignal(signal.SIGINT) is handler


def test_nan_loss_keeps_the_last_good_weights(caffe, tiny_data, nets, tmp_path):
    from rcnn.training import TrainingStopped

    trainer = _trainer(caffe, tiny_data, nets, tmp_path)
    good = {}

    def poison(solver):
        if not good:
            good.update({k: v[0].data.copy() for k, v in solver.net.params.items()})
        solver.net.params["fc6"][0].data[...] = np.nan
        solver.net.blobs["loss_cls"].data[...] = np.nan

    trainer.solver = _StepThen(trainer.solver, 3, poison)
    with pytest.raises(TrainingStopped) as e:
        trainer.train(10, display=1)
    assert e.value.exit_code == 3 and "non-finite loss at iteration 3 (loss_cls=nan)" in str(
        e.value)
    saved = caffe.Net(str(nets["roialign"]["test"]), caffe.TEST,
                      weights=str(tmp_path / "m_iter_2.caffemodel"))
    assert np.isfinite(saved.params["fc6"][0].data).all()


def _zf_train_step(caffe, tiny_data, proto: Path):
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb

    config = load(overrides=["TRAIN.SCALES", "(192,)", "TRAIN.MAX_SIZE", "256",
                             "TRAIN.RPN_MIN_SIZE", "4"])
    activate(config)
    net = caffe.Net(str(proto), caffe.TRAIN)
    rng = np.random.default_rng(0)
    for params in net.params.values():
        for p in params:
            p.data[...] = rng.normal(0, 0.01, p.data.shape)
    net.layers[0].set_roidb(train_roidb(open_dataset(tiny_data, "train"), True))
    out = net.forward()
    net.backward()
    return net, out


@pytest.mark.parametrize("roi_type", ["ROIPooling", "ROIAlign"])
def test_py_faster_rcnn_zf_end2end_trains_one_iteration(caffe, shared_models, tiny_data,
                                                        tmp_path, roi_type):
    from rcnn.tools import swap_roi

    proto = shared_models / "pascal_voc/ZF/faster_rcnn_end2end/train.prototxt"
    if roi_type == "ROIAlign":
        swapped = tmp_path / "zf_align.prototxt"
        assert swap_roi.main([str(proto), str(swapped), "--set", "pool=AVE"]) == 0
        proto = swapped
    net, out = _zf_train_step(caffe, tiny_data, proto)
    assert {"rpn_cls_loss", "rpn_loss_bbox", "cls_loss", "bbox_loss"} <= set(out)
    assert all(np.isfinite(v).all() for v in out.values())
    roi_layer = next(i for i, la in enumerate(net.layers) if la.type == roi_type)
    assert net._layer_names[roi_layer] == "roi_pool_conv5"
    # Gradient flows back through the RoI layer into conv5.
    assert np.abs(net.blobs["conv5"].diff).sum() > 0
