"""The RPN's logic on small inputs: anchors, anchor targets, proposals, and the param_str its
Python layers read."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn import boxes as B
from rcnn.config import defaults
from rcnn.layers.params import parse_param_str
from rcnn.rpn.anchor_targets import anchor_targets
from rcnn.rpn.anchors import anchor_params, generate_anchors, shifted_anchors
from rcnn.rpn.proposals import propose


def test_generate_anchors_matches_faster_rcnn():
    # The 9 anchors Faster R-CNN's trained VGG16 models use (ratios 0.5, 1, 2; scales 8, 16, 32).
    want = np.array([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                     [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                     [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]])
    np.testing.assert_array_equal(generate_anchors(), want)


def test_shifted_anchors_order():
    a = generate_anchors(16, (1,), (1,))  # one 16 x 16 anchor at the origin
    s = shifted_anchors(a, 2, 3, 16)
    assert s.shape == (6, 4)
    np.testing.assert_array_equal(s[1], [16, 0, 31, 15])  # (y=0, x=1)
    np.testing.assert_array_equal(s[3], [0, 16, 15, 31])  # (y=1, x=0)


def test_param_str_like_py_faster_rcnn():
    assert parse_param_str("'feat_stride': 16", "L") == {"feat_stride": 16}
    assert parse_param_str("{'num_classes': 21, 'scales': [1, 2]}", "L") == {
        "num_classes": 21, "scales": [1, 2]}
    with pytest.raises(ValueError, match="not a mapping"):
        parse_param_str("[1, 2]", "L")


def test_anchor_params_take_param_str_over_the_config():
    model = defaults().MODEL
    stride, anchors = anchor_params({}, model)
    assert stride == 16 and anchors.shape == (9, 4)
    stride, anchors = anchor_params({"feat_stride": 8, "scales": [1], "ratios": [1]}, model)
    assert stride == 8
    np.testing.assert_array_equal(anchors, [[0, 0, 15, 15]])


def test_anchor_targets_labels_and_targets():
    train = defaults().TRAIN
    train.RPN_BATCHSIZE = 32
    anchors = shifted_anchors(generate_anchors(16, (1,), (1, 2)), 8, 8, 16)  # 128 x 128
    gt = np.array([[20, 20, 51, 51, 1], [80, 10, 95, 25, 2]], np.float32)
    labels, targets, inw, outw = anchor_targets(anchors, gt, np.array([128, 128, 1.0]),
                                                np.random.default_rng(0), train)
    assert labels.shape == (len(anchors),)
    fg, bg = np.where(labels == 1)[0], np.where(labels == 0)[0]
    assert 2 <= len(fg) <= 16 and len(fg) + len(bg) == 32
    # Every foreground anchor's target moves it onto its best ground truth box.
    ov = B.bbox_overlaps(anchors[fg], gt[:, :4])
    moved = B.bbox_transform_inv(anchors[fg], targets[fg])
    np.testing.assert_allclose(moved, gt[ov.argmax(1), :4], atol=1e-3)
    # Both ground truth boxes have an anchor, even the 16 x 16 one with IoU < 0.7.
    assert set(ov.argmax(1)) == {0, 1}
    # Anchors crossing the border are never sampled.
    outside = (anchors[:, 0] < 0) | (anchors[:, 2] >= 128) | (anchors[:, 1] < 0) | (
        anchors[:, 3] >= 128)
    assert (labels[outside] == -1).all()
    assert (inw[fg] == 1).all() and (inw[bg] == 0).all()
    np.testing.assert_allclose(outw[labels >= 0], 1 / 32)


def test_anchor_targets_without_ground_truth():
    train = defaults().TRAIN
    train.RPN_BATCHSIZE = 16
    anchors = shifted_anchors(generate_anchors(16, (1,), (1,)), 4, 4, 16)
    labels, *_ = anchor_targets(anchors, np.zeros((0, 5), np.float32),
                                np.array([64, 64, 1.0]), np.random.default_rng(0), train)
    assert (labels == 1).sum() == 0 and (labels == 0).sum() == 16


def test_propose_decodes_nms_and_limits():
    test = defaults().TEST
    test.RPN_POST_NMS_TOP_N = 5
    test.RPN_MIN_SIZE = 4
    anchors = generate_anchors(16, (1,), (1,))
    scores = np.zeros((1, 4, 4), np.float32)
    scores[0, 1, 2] = 0.9
    scores[0, 1, 3] = 0.8   # its box overlaps the first by IoU 0.33 -> survives NMS 0.7
    deltas = np.zeros((4, 4, 4), np.float32)
    deltas[2, 1, 2] = np.log(2)  # twice as wide
    boxes, s = propose(scores, deltas, np.array([64, 64, 1.0]), anchors, 16, test)
    assert len(boxes) == 5 and s[0] == pytest.approx(0.9) and s[1] == pytest.approx(0.8)
    np.testing.assert_allclose(boxes[0], [24, 16, 55, 31])  # centre (39.5, 23.5), 32 x 16
    assert (boxes[:, 2] <= 63).all()
