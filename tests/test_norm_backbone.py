"""The batch-normalised backbone of the *_bn variants (rcnn.models.NORM_VARIANTS): BatchNorm +
Scale after each backbone convolution in the generated nets, batch statistics in the train
net and the running ones in the test net; training accumulates the statistics as Caffe's
BatchNorm defines them, and the test net's features are, to float precision, batch
normalisation (Ioffe & Szegedy 2015) written out in numpy with the statistics read from the
saved .caffemodel; a run stopped and resumed ends bit for bit where a straight one does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import (
    ALL_VARIANTS,
    BN_MOVING_AVERAGE,
    NORM_VARIANTS,
    SMALL,
    SMALL_FPN,
    small_model,
    write_small_models,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "small"
# variant -> its config and overrides for a tiny input (128 px: seconds per run)
TINY = ["TRAIN.SCALES", "(128,)", "TRAIN.MAX_SIZE", "128", "TEST.SCALES", "(128,)",
        "TEST.MAX_SIZE", "128"]
RUNS = {"roialign_bn": (MODELS / "config.yml", SMALL),
        "fpn_roialign_bn": (MODELS / "multiscale.yml", SMALL_FPN)}
MAF = BN_MOVING_AVERAGE   # the train nets' moving_average_fraction


def _proto(variant: str, train: bool):
    return small_model(variant, 5, train)


def _backbone(spec) -> list[str]:
    return [f"conv{i + 1}" for i in range(len(spec["convs"]))]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("data"), 4, 1,
                    SyntheticSpec(image_size=128, min_size=8, max_size=48, seed=6))


@pytest.fixture(scope="module")
def nets(tmp_path_factory, caffe):
    return write_small_models(tmp_path_factory.mktemp("models"), 5, list(RUNS))


def test_bn_variants_exist_and_are_committed():
    assert set(NORM_VARIANTS) == {"roialign_bn", "fpn_roialign_bn", "mask_fpn_roialign_bn"}
    assert set(NORM_VARIANTS) <= set(ALL_VARIANTS)
    for v in NORM_VARIANTS:   # (test_detector checks that they equal what models.py writes)
        assert (MODELS / v / "train.prototxt").is_file(), v
        assert (MODELS / v / "test.prototxt").is_file(), v


@pytest.mark.parametrize("variant", sorted(NORM_VARIANTS))
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_batchnorm_and_scale_follow_each_backbone_conv(caffe, variant, train):
    """conv{i} (no bias, one param) -> BatchNorm conv{i}_bn (three blobs, lr_mult 0; train:
    batch statistics, test: use_global_stats) -> Scale in place with a bias -> ReLU, in that
    order; no other layer is normalised: the net is its namesake plus these layers."""
    net = _proto(variant, train)
    layers = list(net.layer)
    index = {la.name: i for i, la in enumerate(layers)}
    spec = SMALL_FPN if "fpn" in variant else SMALL
    for conv in _backbone(spec):
        i = index[conv]
        c, bn, scale, relu = layers[i:i + 4]
        assert c.type == "Convolution" and not c.convolution_param.bias_term
        assert len(c.param) == 1 and c.param[0].lr_mult == 1
        assert (bn.type, bn.name, list(bn.bottom), list(bn.top)) == (
            "BatchNorm", f"{conv}_bn", [conv], [f"{conv}_bn"])
        assert [p.lr_mult for p in bn.param] == [0, 0, 0]
        if train:   # batch statistics: Caffe's TRAIN default, unless set true
            assert not bn.batch_norm_param.use_global_stats
            assert bn.batch_norm_param.moving_average_fraction == pytest.approx(0.99)
        else:
            assert bn.batch_norm_param.HasField("use_global_stats")
            assert bn.batch_norm_param.use_global_stats
        assert (scale.type, list(scale.bottom), list(scale.top)) == (
            "Scale", [f"{conv}_bn"], [f"{conv}_bn"])
        assert scale.scale_param.bias_term and len(scale.param) == 2
        assert (relu.type, list(relu.bottom), list(relu.top)) == (
            "ReLU", [f"{conv}_bn"], [f"{conv}_bn"])
    plain = _proto(variant.removesuffix("_bn"), train)
    added = {f"{c}{s}" for c in _backbone(spec) for s in ("_bn", "_scale")}
    assert {la.name for la in layers} == {la.name for la in plain.layer} | added
    assert [la.name for la in layers if la.type in ("BatchNorm", "Scale")] == [
        f"{c}{s}" for c in _backbone(spec) for s in ("_bn", "_scale")]
    assert not any(la.convolution_param.HasField("bias_term") for la in plain.layer
                   if la.name in _backbone(spec))   # the namesakes keep their biases
    # the box head (and RPN, FPN) read normalised features
    last = f"{_backbone(spec)[-1]}_bn"
    assert any(last in la.bottom for la in layers if la.name != f"relu{len(spec['convs'])}")


def _stored(path: Path) -> dict[str, list[np.ndarray]]:
    """A .caffemodel's blobs by layer, parsed with protobuf (not through a net)."""
    from caffe.proto import caffe_pb2
    from rcnn.weights import proto_shape

    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {la.name: [np.asarray(b.data, np.float64).reshape(proto_shape(b)) for b in la.blobs]
            for la in net.layer if la.blobs}


def _bn_numpy(x, mean_sum, var_sum, s, gamma, beta, eps):
    """Batch normalisation at test time from its definition (Ioffe & Szegedy 2015, alg. 2)
    with Caffe's stored statistics: mean = m0 / s, var = m1 / s (0 for s = 0), then
    gamma (x - mean) / sqrt(var + eps) + beta per channel; x (N, C, H, W)."""
    f = 0.0 if s == 0 else 1.0 / s
    mean, var = (mean_sum * f)[None, :, None, None], (var_sum * f)[None, :, None, None]
    return (gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps)
            + beta[None, :, None, None])


def test_one_train_forward_uses_and_accumulates_batch_statistics(caffe, nets, tiny_data):
    """Train phase, one forward of a fresh net: each BatchNorm's output is the conv output
    normalised by the image's own per-channel mean and (biased) variance over its H x W
    positions; its running blobs become that mean, the unbiased variance (x m / (m - 1),
    m = H W) and the weight s = 1."""
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb

    config = load(RUNS["roialign_bn"][0], overrides=TINY)
    activate(config)
    net = caffe.Net(str(nets["roialign_bn"]["train"]), caffe.TRAIN)
    net.layers[0].set_roidb(train_roidb(open_dataset(tiny_data, "train"), False))
    net.forward()
    eps = caffe.proto.caffe_pb2.BatchNormParameter().eps
    assert eps == pytest.approx(1e-5)
    for conv in _backbone(SMALL):
        x = net.blobs[conv].data.astype(np.float64)
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        mean_sum, var_sum, s = (b.data for b in net.params[f"{conv}_bn"])
        assert float(s[0]) == 1.0
        np.testing.assert_allclose(mean_sum, mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var_sum, var * m / (m - 1), rtol=1e-4, atol=1e-6)
        gamma, beta = (b.data.astype(np.float64) for b in net.params[f"{conv}_scale"])
        want = np.maximum(_bn_numpy(x, mean, var, 1.0, gamma, beta, eps), 0)
        np.testing.assert_allclose(net.blobs[f"{conv}_bn"].data, want, rtol=1e-3, atol=1e-4)
        assert np.abs(want).max() > 0.1


@pytest.mark.parametrize("variant", list(RUNS))
def test_training_moves_the_statistics_and_the_test_net_applies_them(caffe, nets, tiny_data,
                                                                     tmp_path, variant):
    """A few iterations through rcnn.pipeline.train: each BatchNorm's weight s is
    sum_k 0.99^k over the iterations (one image each) and its mean and variance sums have
    moved from 0; the test net (use_global_stats) turns the conv output of an image into
    the numpy batch normalisation of it with the statistics read from the .caffemodel."""
    from rcnn.datasets.images import read_image_bgr
    from rcnn.pipeline import TrainSpec, train

    cfg, spec = RUNS[variant]
    config = load(cfg, overrides=TINY)
    iters = 4
    weights = train(config, TrainSpec(net=nets[variant]["train"], data=tiny_data,
                                      out=tmp_path / "run", iters=iters, display=2))
    stored = _stored(weights)
    net = caffe.Net(str(nets[variant]["test"]), caffe.TEST, weights=str(weights))
    image = read_image_bgr(next((tiny_data / "JPEGImages").glob("test_*.jpg")))
    blob = (image.astype(np.float32) - np.asarray(config.PIXEL_MEANS, np.float32)[0])
    net.blobs["data"].reshape(1, 3, *blob.shape[:2])
    net.blobs["data"].data[0] = blob.transpose(2, 0, 1)
    net.reshape()
    last = _backbone(spec)[-1]
    net.forward(end=f"relu{len(spec['convs'])}")
    eps = 1e-5
    for conv in _backbone(spec):
        mean_sum, var_sum, s = stored[f"{conv}_bn"]
        assert float(s[0]) == pytest.approx(sum(MAF ** k for k in range(iters)), rel=1e-6)
        assert np.abs(mean_sum).max() > 0 and (var_sum > 0).all()
        gamma, beta = stored[f"{conv}_scale"]
        x = net.blobs[conv].data.astype(np.float64)
        want = np.maximum(_bn_numpy(x, mean_sum, var_sum, float(s[0]), gamma, beta, eps), 0)
        got = net.blobs[f"{conv}_bn"].data
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
        assert (want > 0).mean() > 0.05, conv
        # not the image's own statistics: the test net is not in batch-statistics mode
        own = np.maximum(_bn_numpy(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), 1.0,
                                   gamma, beta, eps), 0)
        assert np.abs(own - want).max() > 1e-2 * np.abs(want).max(), conv
    assert net.blobs[f"{last}_bn"].data.shape[1] == spec["convs"][-1][1]


def test_stopped_and_resumed_equals_straight_with_batchnorm(caffe, tmp_path):
    """tests/test_resume.py's check on roialign_bn: 10 + 10 iterations end with the same
    weights and running statistics, bit for bit, as 20 straight."""
    from test_resume import losses, max_abs_difference
    from test_resume import train as run

    data = generate(tmp_path / "data", 6, 1, SyntheticSpec(seed=2))
    net = write_small_models(tmp_path / "models", 5, ["roialign_bn"])["roialign_bn"]["train"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(net, data, straight, 20)
    run(net, data, resumed, 10)
    run(net, data, resumed, 20, "--resume", str(resumed / "state" / "model_iter_10.solverstate"))
    assert losses(straight) == losses(resumed)
    a = _stored(straight / "model_iter_20.caffemodel")
    b = _stored(resumed / "model_iter_20.caffemodel")
    assert float(a["conv1_bn"][2][0]) == pytest.approx(sum(MAF ** k for k in range(20)))
    for name in ("conv1_bn", "conv4_bn", "conv4_scale"):
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    assert max_abs_difference(straight / "model_iter_20.caffemodel",
                              resumed / "model_iter_20.caffemodel") == 0
    assert max_abs_difference(resumed / "model_iter_10.caffemodel",
                              resumed / "model_iter_20.caffemodel") > 0
