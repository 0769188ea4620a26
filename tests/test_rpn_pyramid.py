"""The RPN over a feature pyramid: per-level anchors, anchor targets over all levels in the
nets' concatenated layout, proposals with a per-level top-k and one NMS over all levels."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn import boxes as B
from rcnn.config import defaults
from rcnn.rpn.anchor_targets import anchor_targets
from rcnn.rpn.anchors import generate_anchors, level_anchors, shifted_anchors
from rcnn.rpn.proposals import propose, propose_levels
from rcnn.rpn.pyramid import pyramid_anchor_targets, split_levels, to_blob_layout

STRIDES = (4, 8, 16)
SIZES = (12, 24, 48)


def test_level_anchors_one_size_per_level_centred_on_the_cell():
    anchors = level_anchors(STRIDES, SIZES, (0.5, 1, 2))
    for stride, size, a in zip(STRIDES, SIZES, anchors, strict=True):
        w, h, cx, cy = B.sizes_and_centres(a)
        assert a.shape == (3, 4)
        np.testing.assert_allclose(np.sqrt(w * h), size, rtol=0.1)
        np.testing.assert_allclose(h / w, (0.5, 1, 2), rtol=0.2)
        np.testing.assert_allclose([cx, cy], (stride - 1) / 2)
    with pytest.raises(ValueError, match="one anchor size per level"):
        level_anchors(STRIDES, SIZES[:2])


def test_blob_layout_and_split_levels_invert_each_other():
    rng = np.random.default_rng(0)
    shapes, a = [(3, 5), (2, 2)], 3
    per_level = [rng.random((h * w * a, 4)) for h, w in shapes]
    flat = np.concatenate([to_blob_layout(v, h, w, a) for v, (h, w) in zip(per_level, shapes,
                                                                          strict=True)])
    back = split_levels(flat, shapes, 4 * a)
    for v, b, (h, w) in zip(per_level, back, shapes, strict=True):
        # channel anchor * 4 + j at (y, x) is value j of anchor (y, x, anchor)
        np.testing.assert_array_equal(b.reshape(a, 4, h, w)[2, 1, 1, 0], v[(1 * w + 0) * a + 2, 1])
    with pytest.raises(ValueError):
        split_levels(flat[:-1], shapes, 4 * a)


def test_pyramid_anchor_targets_sample_over_all_levels():
    """One fg/bg sample over every level's anchors: the labels of each level equal those of
    anchor_targets over the concatenated anchors, small objects' positives on fine levels."""
    train = defaults().TRAIN
    anchors = level_anchors(STRIDES, SIZES)
    shapes = [(16, 16), (8, 8), (4, 4)]
    gt = np.array([[10, 10, 21, 21, 1], [20, 8, 67, 55, 2]], np.float32)
    im_info = np.array([64, 64, 1.0])
    labels, targets, inside_w, outside_w = pyramid_anchor_targets(
        shapes, anchors, STRIDES, gt, im_info, np.random.default_rng(0), train)
    n = sum(3 * h * w for h, w in shapes)
    assert labels.shape == (n,) and targets.shape == inside_w.shape == (4 * n,)
    all_anchors = np.concatenate([shifted_anchors(a, h, w, s) for a, (h, w), s
                                  in zip(anchors, shapes, STRIDES, strict=True)])
    ref = anchor_targets(all_anchors, gt, im_info, np.random.default_rng(0), train)
    per_level = split_levels(labels, shapes, 3)
    start = 0
    for (h, w), lab in zip(shapes, per_level, strict=True):
        expect = ref[0][start:start + h * w * 3].reshape(h, w, 3).transpose(2, 0, 1)
        np.testing.assert_array_equal(lab, expect)
        start += h * w * 3
    assert (per_level[0] == 1).any() and (per_level[2] == 1).any()   # 12 px on P2, 48 on P4
    assert (labels >= 0).sum() <= train.RPN_BATCHSIZE
    assert inside_w.sum() == 4 * (labels == 1).sum()   # 4 inside weights per positive
    assert outside_w.sum() == pytest.approx(4.0)          # 4 x (1 / examples) x examples


def _level_inputs(rng, shapes, a=3):
    scores = [rng.random((a, h, w)).astype(np.float32) for h, w in shapes]
    deltas = [(rng.standard_normal((4 * a, h, w)) * 0.1).astype(np.float32) for h, w in shapes]
    return scores, deltas


def test_propose_levels_with_one_level_is_propose():
    test = defaults().TEST
    test.RPN_MIN_SIZE, test.RPN_PRE_NMS_TOP_N, test.RPN_POST_NMS_TOP_N = 4, 50, 20
    anchors = generate_anchors(16, (0.5, 1, 2), (1, 2))
    scores, deltas = _level_inputs(np.random.default_rng(1), [(6, 7)], 6)
    im_info = np.array([96, 112, 1.0])
    one = propose(scores[0], deltas[0], im_info, anchors, 16, test)
    many = propose_levels(scores, deltas, im_info, [anchors], [16], test)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


def test_propose_levels_top_k_per_level_then_one_nms():
    """RPN_PRE_NMS_TOP_N applies per level: the coarse level's boxes survive however low
    they score; NMS then runs over all levels, post-NMS top N over all."""
    test = defaults().TEST
    test.RPN_MIN_SIZE, test.RPN_PRE_NMS_TOP_N, test.RPN_POST_NMS_TOP_N = 1, 2, 0
    anchors = level_anchors(STRIDES, SIZES)
    shapes = [(16, 16), (8, 8), (4, 4)]
    scores, deltas = _level_inputs(np.random.default_rng(2), shapes)
    scores[2] *= 0.01            # the coarsest level scores far below the others
    deltas = [np.zeros_like(d) for d in deltas]
    boxes, s = propose_levels(scores, deltas, np.array([64, 64, 1.0]), anchors, STRIDES, test)
    assert len(boxes) <= 3 * 2 and (s < 0.01).sum() >= 1
    assert np.all(np.diff(s) <= 0)
    sizes = np.sqrt(B.box_areas(boxes))
    assert (sizes > 30).any()    # a 48 px anchor of the coarsest level is among them
    test.RPN_POST_NMS_TOP_N = 1
    boxes1, s1 = propose_levels(scores, deltas, np.array([64, 64, 1.0]), anchors, STRIDES,
                                test)
    assert len(boxes1) == 1 and s1[0] == s.max()


def test_propose_levels_never_empty():
    test = defaults().TEST
    test.RPN_MIN_SIZE = 1000     # filters every box
    anchors = level_anchors(STRIDES, SIZES)
    scores, deltas = _level_inputs(np.random.default_rng(3), [(4, 4), (2, 2), (1, 1)])
    boxes, s = propose_levels(scores, deltas, np.array([16, 16, 1.0]), anchors, STRIDES, test)
    assert len(boxes) == 1 and s[0] == max(v.max() for v in scores)


def test_nms_max_keep_is_the_prefix_of_the_full_result():
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 50, (200, 2))
    dets = np.hstack([xy, xy + rng.uniform(5, 30, (200, 2)), rng.random((200, 1))])
    full = B.nms(dets, 0.5)
    np.testing.assert_array_equal(B.nms(dets, 0.5, max_keep=7), full[:7])
    np.testing.assert_array_equal(B.nms(dets, 0.5, max_keep=0), full)
