"""The small FPN Faster R-CNN (models/small/fpn_roialign): generated and committed, trains end
to end through train_net with every level learning and the RPN head shared, and test_net and
demo run it as they run the single-level model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import load
from rcnn.datasets.synthetic import SyntheticSpec, generate

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "small"
CFG = str(MODELS / "multiscale.yml")
SMALL_INPUT = ["TRAIN.SCALES", "(128,)", "TRAIN.MAX_SIZE", "128", "TEST.SCALES", "(128,)",
               "TEST.MAX_SIZE", "128", "TEST.RPN_POST_NMS_TOP_N", "30"]


@pytest.fixture(scope="module")
def tiny_multiscale(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("ms"), 6, 3,
                    SyntheticSpec(image_size=128, min_size=6, max_size=60, seed=4))


def test_multiscale_config_is_committed_and_loads(tmp_path):
    from rcnn.models import MULTISCALE_CONFIG, write_multiscale_config

    written = write_multiscale_config(tmp_path)
    assert (MODELS / "multiscale.yml").read_text() == written.read_text()
    assert load(written) == load(MULTISCALE_CONFIG)
    assert load(written).TRAIN.SCALES == (384,)


def test_fpn_prototxt_structure():
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = text_format.Merge((MODELS / "fpn_roialign" / "train.prototxt").read_text(),
                            caffe_pb2.NetParameter())
    layers = {layer.name: layer for layer in net.layer}
    roi = layers["roi_pool"]
    assert roi.type == "PyramidROIAlign"
    assert list(roi.bottom) == ["rois", "p2", "p3", "p4", "p5"]
    assert list(roi.pyramid_roi_param.spatial_scale) == [0.25, 0.125, 0.0625, 0.03125]
    assert not roi.roi_pooling_param.HasField("spatial_scale")
    shared = [layer for layer in net.layer if layer.name.startswith("rpn_conv_p")]
    assert [layer.name for layer in shared] == [f"rpn_conv_p{i}" for i in range(2, 7)]
    assert {tuple(p.name for p in layer.param) for layer in shared} == {
        ("rpn_conv_w", "rpn_conv_b")}
    assert layers["rpn-data"].python_param.layer == "FPNAnchorTargetLayer"
    assert list(layers["rpn-data"].bottom) == [*(f"rpn_cls_score_p{i}" for i in range(2, 7)),
                                               "gt_boxes", "im_info"]


def test_fpn_trains_tests_and_draws_with_the_tools(caffe, tiny_multiscale, tmp_path):
    """train_net, test_net and demo with the committed FPN prototxts and no new flags; after
    one more iteration every level's convolutions have changed, the fixed upsampling has
    not, and the shared RPN head is one set of weights."""
    from rcnn.tools import demo, test_net, train_net

    out = tmp_path / "run"
    assert train_net.main(["--net", str(MODELS / "fpn_roialign" / "train.prototxt"),
                           "--data", str(tiny_multiscale), "--cfg", CFG, "--out", str(out),
                           "--iters", "3", "--snapshot-iters", "2", "--display", "1",
                           "--set", *SMALL_INPUT]) == 0
    losses = [json.loads(x) for x in (out / "loss_log.jsonl").read_text().splitlines()]
    assert len(losses) == 3
    assert all(np.isfinite(v) for r in losses for v in r.values())
    assert set(losses[0]) == {"iter", "loss_cls", "loss_bbox", "rpn_loss_cls",
                              "rpn_loss_bbox"}
    test = str(MODELS / "fpn_roialign" / "test.prototxt")
    nets = [caffe.Net(test, caffe.TEST, weights=str(out / f"model_iter_{i}.caffemodel"))
            for i in (2, 3)]
    changed = {name: not np.array_equal(nets[0].params[name][0].data,
                                        nets[1].params[name][0].data)
               for name in nets[0].params}
    for name in ("conv1", "conv5", "fpn_lateral2", "fpn_lateral5", "p2", "p5", "rpn_conv_p2",
                 "rpn_cls_score_p4", "fc6"):
        assert changed[name], name
    assert not changed["fpn_up3"] and not changed["fpn_up5"]
    for lvl in range(3, 7):
        for a, b in zip(nets[1].params["rpn_conv_p2"], nets[1].params[f"rpn_conv_p{lvl}"],
                        strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    results = tmp_path / "results.json"
    assert test_net.main(["--net", test, "--weights", str(out / "model_iter_3.caffemodel"),
                          "--data", str(tiny_multiscale), "--cfg", CFG, "--out",
                          str(results), "--set", *SMALL_INPUT]) == 0
    r = json.loads(results.read_text())
    assert r["num_images"] == 3
    assert set(r["mean"]) >= {"ap", "ap50", "ap75", "aps", "apm", "apl"}
    assert len(r["detections"]) == 3
    png = tmp_path / "det.png"
    assert demo.main(["--net", test, "--weights", str(out / "model_iter_3.caffemodel"),
                      "--data", str(tiny_multiscale), "--count", "2", "--thresh", "0",
                      "--cfg", CFG, "--out", str(png), "--set", *SMALL_INPUT]) == 0
    assert png.stat().st_size > 1000


def test_fpn_proposals_come_from_every_level(caffe, tiny_multiscale):
    """The test net's proposal layer decodes all five levels: with the RPN's scores forced
    equal and its deltas zero, the RoIs are anchors of every size (12 to 192 px); every blob
    of every level is finite."""
    from rcnn.config import activate

    config = load(CFG, overrides=[*SMALL_INPUT, "TEST.RPN_POST_NMS_TOP_N", "0",
                                  "TEST.RPN_MIN_SIZE", "1"])
    activate(config)
    net = caffe.Net(str(MODELS / "fpn_roialign" / "test.prototxt"), caffe.TEST)
    for name in ("rpn_cls_score_p2", "rpn_bbox_pred_p2"):
        for blob in net.params[name]:
            blob.data[...] = 0
    net.blobs["data"].reshape(1, 3, 256, 256)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 50, (1, 3, 256, 256))
    net.blobs["im_info"].data[...] = [[256, 256, 1.0]]
    net.forward()
    for name, blob in net.blobs.items():   # no level holds Caffe's -FLT_MAX of empty windows
        assert np.isfinite(blob.data).all() and np.abs(blob.data).max() < 1e6, name
    rois = net.blobs["rois"].data
    sizes = np.sqrt((rois[:, 3] - rois[:, 1] + 1) * (rois[:, 4] - rois[:, 2] + 1))
    for size in (12, 24, 48, 96, 192):
        assert np.any(np.abs(sizes - size) < 0.2 * size), size
