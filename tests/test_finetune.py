"""Fine-tuning from another net's weights (py-faster-rcnn's `--weights VGG16.v2.caffemodel`):
a classifier made here, whose convolutions have the names and shapes of the small detector's
backbone, initialises the detector by layer name. Its convolutions are copied, the detector's
own layers keep their fillers' values, its classifier layer is not used, the Trainer logs
which is which (rcnn.weights.copy_plan); BatchNorm backbones copy the same way; a layer of
another shape is an error naming it."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import SMALL, write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")
BACKBONE = [f"conv{i + 1}" for i in range(len(SMALL["convs"]))]
DETECTOR_ONLY = ["rpn_conv", "rpn_cls_score", "rpn_bbox_pred", "fc6", "fc7", "cls_score",
                 "bbox_pred"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("data"), 4, 1, SyntheticSpec(seed=3))


@pytest.fixture(scope="module")
def nets(tmp_path_factory, caffe):
    return write_small_models(tmp_path_factory.mktemp("models"), 5, ["roialign", "roialign_bn"])


def classifier_weights(caffe, out: Path, bn: bool, channels4: int | None = None,
                       seed: int = 11) -> dict[str, list[np.ndarray]]:
    """<out>/classifier.caffemodel: an image classifier (64 x 64 input; conv1-conv4 with the
    small detector's kernels, channels and strides, named as its layers, each with a bias or,
    with bn, followed by conv{i}_bn BatchNorm and conv{i}_scale Scale; global average
    pooling; fc_cls, 10 classes; a softmax loss), every blob set to known random values
    (BatchNorm: positive variances and weight s). Returns them by layer."""
    from caffe import layers as L
    from caffe import net_spec
    from caffe import params as P

    n = net_spec.NetSpec()
    n.data = L.Input(shape={"dim": [1, 3, 64, 64]})
    n.label = L.Input(shape={"dim": [1]})
    x = n.data
    for i, (k, c, s) in enumerate(SMALL["convs"]):
        name = f"conv{i + 1}"
        if channels4 and i == 3:
            c = channels4
        conv = L.Convolution(x, name=name, kernel_size=k, num_output=c, stride=s, pad=k // 2,
                             bias_term=not bn)
        setattr(n, name, conv)
        x = conv
        if bn:
            x = L.BatchNorm(x, name=f"{name}_bn", param=[{"lr_mult": 0}] * 3)
            setattr(n, f"{name}_bn", x)
            x = L.Scale(x, name=f"{name}_scale", in_place=True, bias_term=True)
            setattr(n, f"{name}_scale", x)
        x = L.ReLU(x, in_place=True, name=f"relu{i + 1}")
        setattr(n, f"relu{i + 1}", x)
    n.pool = L.Pooling(x, pool=P.Pooling.AVE, global_pooling=True)
    n.fc_cls = L.InnerProduct(n.pool, num_output=10)
    n.loss = L.SoftmaxWithLoss(n.fc_cls, n.label)
    proto = out / "classifier.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    rng = np.random.default_rng(seed)
    values = {}
    for name, blobs in net.params.items():
        for j, b in enumerate(blobs):
            positive = name.endswith("_bn") and j > 0
            b.data[...] = (rng.uniform(0.5, 3.0, b.data.shape) if positive
                           else rng.normal(0, 0.1, b.data.shape))
        values[name] = [b.data.copy() for b in blobs]
    net.save(str(out / "classifier.caffemodel"))
    return values


def trainer(caffe, data: Path, train_net: Path, out: Path, weights: Path | None = None):
    """A Trainer over the train net, Caffe's generator seeded first so that every Trainer
    draws the same filler values."""
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.training import Trainer, write_solver

    config = load(CFG)
    solver = write_solver(None, train_net, out, "m")
    activate(config)
    caffe.set_random_seed(5)
    return Trainer(solver, train_roidb(open_dataset(data, "train"), False), out, "m",
                   config.TRAIN, weights=weights, seed=config.RNG_SEED)


def params(net) -> dict[str, list[np.ndarray]]:
    return {k: [b.data.copy() for b in v] for k, v in net.params.items()}


def test_a_classifier_initialises_the_backbone_by_name(caffe, tiny_data, nets, tmp_path,
                                                       caplog):
    values = classifier_weights(caffe, tmp_path, bn=False)
    weights = tmp_path / "classifier.caffemodel"
    fresh = params(trainer(caffe, tiny_data, nets["roialign"]["train"], tmp_path / "a").net)
    with caplog.at_level(logging.INFO, logger="rcnn.weights"):
        tuned = trainer(caffe, tiny_data, nets["roialign"]["train"], tmp_path / "b", weights)
    got = params(tuned.net)
    assert set(got) == set(BACKBONE) | set(DETECTOR_ONLY)   # fc_cls is not in the detector
    for name in BACKBONE:   # copied: the classifier's values, not the fillers'
        assert len(got[name]) == 2
        for a, b, f in zip(got[name], values[name], fresh[name], strict=True):
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, f)
    for name in DETECTOR_ONLY:   # the fillers' values, as without --weights
        for a, f in zip(got[name], fresh[name], strict=True):
            np.testing.assert_array_equal(a, f)
        assert np.abs(got[name][0]).max() > 0, name   # gaussian / msra weights, not zeros
    line = [r.getMessage() for r in caplog.records if "copied by name" in r.getMessage()]
    assert line == [
        f"{weights}: copied by name 4 of the net's 11 layers with parameters (conv1, conv2, "
        "conv3, conv4); initialised by their fillers instead, not in the file: 7 (rpn_conv, "
        "rpn_cls_score, rpn_bbox_pred, fc6, fc7, cls_score, bbox_pred); the file's layers "
        "not in the net, not used: 1 (fc_cls)"]


def test_train_net_weights_with_lr_0_keeps_the_classifier_backbone(caffe, tiny_data, nets,
                                                                  tmp_path, caplog):
    """train_net --weights for 2 iterations at learning rate 0: the saved backbone is the
    classifier's, and the tool's log says what was copied."""
    from caffe.proto import caffe_pb2
    from rcnn.tools import train_net

    values = classifier_weights(caffe, tmp_path, bn=False)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0\nlr_policy: "fixed"\ntype: "SGD"\nmomentum: 0.9\n')
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert train_net.main(["--net", str(nets["roialign"]["train"]), "--data",
                               str(tiny_data), "--cfg", CFG, "--out", str(out), "--iters", "2",
                               "--solver", str(solver), "--weights",
                               str(tmp_path / "classifier.caffemodel")]) == 0
    assert any("copied by name 4 of the net's 11 layers" in r.getMessage()
               for r in caplog.records)
    saved = caffe_pb2.NetParameter()
    saved.ParseFromString((out / "model_iter_2.caffemodel").read_bytes())
    layers = {la.name: la for la in saved.layer if la.blobs}
    assert "fc_cls" not in layers
    for name in BACKBONE:
        for blob, want in zip(layers[name].blobs, values[name], strict=True):
            np.testing.assert_array_equal(np.asarray(blob.data, np.float32).reshape(want.shape),
                                          want)


def test_a_bn_classifier_initialises_a_bn_backbone(caffe, tiny_data, nets, tmp_path):
    """BatchNorm statistics and Scale parameters are copied by name like the convolutions."""
    from rcnn.weights import copy_plan, read_caffe_file

    values = classifier_weights(caffe, tmp_path, bn=True)
    weights = tmp_path / "classifier.caffemodel"
    tuned = trainer(caffe, tiny_data, nets["roialign_bn"]["train"], tmp_path / "b", weights)
    got = params(tuned.net)
    for conv in BACKBONE:
        for name, count in ((conv, 1), (f"{conv}_bn", 3), (f"{conv}_scale", 2)):
            assert len(got[name]) == len(values[name]) == count
            for a, b in zip(got[name], values[name], strict=True):
                np.testing.assert_array_equal(a, b)
    plan = copy_plan(read_caffe_file(weights).message, tuned.net)
    assert len(plan.copied) == 12 and plan.unused == ["fc_cls"]
    assert plan.initialised == DETECTOR_ONLY


def test_weights_of_another_shape_are_an_error_naming_the_layer(caffe, tiny_data, nets,
                                                                tmp_path):
    """A plain classifier into the BatchNorm net (its convolutions have no bias), and one
    whose conv4 has other channels into the plain net: WeightsError, before Caffe would
    abort."""
    from rcnn.weights import WeightsError

    classifier_weights(caffe, tmp_path, bn=False)
    with pytest.raises(WeightsError, match="layer 'conv1' has 2 parameter blobs in the file, "
                                           "1 in the net"):
        trainer(caffe, tiny_data, nets["roialign_bn"]["train"], tmp_path / "a",
                tmp_path / "classifier.caffemodel")
    classifier_weights(caffe, tmp_path, bn=False, channels4=64)
    with pytest.raises(WeightsError, match=r"layer 'conv4': \(64, 96, 3, 3\), \(64\) in the "
                                           r"file, \(128, 96, 3, 3\), \(128\) in the net"):
        trainer(caffe, tiny_data, nets["roialign"]["train"], tmp_path / "b",
                tmp_path / "classifier.caffemodel")
