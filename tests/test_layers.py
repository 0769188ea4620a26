"""The Faster R-CNN Python layers' logic on small inputs."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn import boxes as B
from rcnn import config as C
from rcnn.layers.anchor_target import anchor_targets
from rcnn.layers.params import parse_param_str
from rcnn.layers.proposal import propose
from rcnn.layers.proposal_target import sample_rois


@pytest.fixture(autouse=True)
def _cfg():
    C.reset()
    yield
    C.reset()


def test_param_str_like_py_faster_rcnn():
    assert parse_param_str("'feat_stride': 16", "L") == {"feat_stride": 16}
    assert parse_param_str("{'num_classes': 21, 'scales': [1, 2]}", "L") == {
        "num_classes": 21, "scales": [1, 2]}
    with pytest.raises(ValueError, match="not a mapping"):
        parse_param_str("[1, 2]", "L")


def test_anchor_targets_labels_and_targets():
    C.cfg.TRAIN.RPN_BATCHSIZE = 32
    anchors = B.shifted_anchors(B.generate_anchors(16, (1,), (1, 2)), 8, 8, 16)  # 128 x 128
    gt = np.array([[20, 20, 51, 51, 1], [80, 10, 95, 25, 2]], np.float32)
    labels, targets, inw, outw = anchor_targets(anchors, gt, np.array([128, 128, 1.0]),
                                                np.random.default_rng(0))
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
    C.cfg.TRAIN.RPN_BATCHSIZE = 16
    anchors = B.shifted_anchors(B.generate_anchors(16, (1,), (1,)), 4, 4, 16)
    labels, *_ = anchor_targets(anchors, np.zeros((0, 5), np.float32),
                                np.array([64, 64, 1.0]), np.random.default_rng(0))
    assert (labels == 1).sum() == 0 and (labels == 0).sum() == 16


def test_propose_decodes_nms_and_limits():
    C.cfg.TEST.RPN_POST_NMS_TOP_N = 5
    C.cfg.TEST.RPN_MIN_SIZE = 4
    anchors = B.generate_anchors(16, (1,), (1,))
    scores = np.zeros((1, 4, 4), np.float32)
    scores[0, 1, 2] = 0.9
    scores[0, 1, 3] = 0.8   # its box overlaps the first by IoU 0.33 -> survives NMS 0.7
    deltas = np.zeros((4, 4, 4), np.float32)
    deltas[2, 1, 2] = np.log(2)  # twice as wide
    boxes, s = propose(scores, deltas, np.array([64, 64, 1.0]), anchors, 16, "TEST")
    assert len(boxes) == 5 and s[0] == pytest.approx(0.9) and s[1] == pytest.approx(0.8)
    np.testing.assert_allclose(boxes[0], [24, 16, 55, 31])  # centre (39.5, 23.5), 32 x 16
    assert (boxes[:, 2] <= 63).all()


def test_sample_rois_balance_and_targets():
    C.cfg.TRAIN.BATCH_SIZE = 16
    C.cfg.TRAIN.BG_THRESH_LO = 0.0  # as in faster_rcnn_end2end.yml: IoU 0 is background
    rng = np.random.default_rng(0)
    gt = np.array([[10, 10, 40, 40, 3]], np.float32)
    jitter = rng.uniform(-3, 3, (40, 4))
    near = np.hstack([np.zeros((40, 1)), gt[:, :4] + jitter])
    far = np.hstack([np.zeros((40, 1)), rng.uniform(60, 90, (40, 2)),
                     rng.uniform(100, 120, (40, 2))])
    rois, labels, targets, inw, outw = sample_rois(np.vstack([near, far]).astype(np.float32),
                                                   gt, 5, rng)
    assert len(rois) == 16 and (labels > 0).sum() == 4 and set(labels[labels > 0]) == {3}
    assert targets.shape == (16, 20)
    # Class 3's slot holds the normalised deltas; the others are zero.
    fg = labels > 0
    d = B.bbox_transform(rois[fg, 1:5], np.repeat(gt[:, :4], fg.sum(), 0))
    np.testing.assert_allclose(targets[fg, 12:16], d / [0.1, 0.1, 0.2, 0.2], atol=1e-4)
    assert not targets[fg][:, :12].any() and not targets[~fg].any()
    assert (inw[fg, 12:16] == 1).all() and (outw == inw).all()
