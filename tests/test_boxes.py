"""Boxes, NMS and evaluation on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn import boxes as B
from rcnn import evaluation as E


def test_generate_anchors_matches_faster_rcnn():
    # The 9 anchors Faster R-CNN's trained VGG16 models use (ratios 0.5, 1, 2; scales 8, 16, 32).
    want = np.array([[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
                     [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
                     [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359]])
    np.testing.assert_array_equal(B.generate_anchors(), want)


def test_shifted_anchors_order():
    a = B.generate_anchors(16, (1,), (1,))  # one 16 x 16 anchor at the origin
    s = B.shifted_anchors(a, 2, 3, 16)
    assert s.shape == (6, 4)
    np.testing.assert_array_equal(s[1], [16, 0, 31, 15])  # (y=0, x=1)
    np.testing.assert_array_equal(s[3], [0, 16, 15, 31])  # (y=1, x=0)


def test_bbox_transform_round_trip_and_values():
    ex = np.array([[0, 0, 9, 9], [10, 20, 29, 59]], np.float64)
    gt = np.array([[5, 0, 14, 19], [10, 20, 29, 59]], np.float64)
    d = B.bbox_transform(ex, gt)
    # Box 1: width 10 -> 10, height 10 -> 20; centre (4.5, 4.5) -> (9.5, 9.5).
    np.testing.assert_allclose(d[0], [0.5, 0.5, 0, np.log(2)])
    np.testing.assert_allclose(d[1], 0)
    np.testing.assert_allclose(B.bbox_transform_inv(ex, d), gt, atol=1e-9)


def test_bbox_transform_inv_caps_huge_deltas():
    out = B.bbox_transform_inv(np.array([[0, 0, 15, 15]], np.float32),
                               np.array([[0, 0, 100, 100]], np.float32))
    assert np.isfinite(out).all()


def test_clip_boxes():
    out = B.clip_boxes(np.array([[-5, -3, 120, 60, 3, 4, 5, 6]], np.float32), (50, 100, 3))
    np.testing.assert_array_equal(out, [[0, 0, 99, 49, 3, 4, 5, 6]])


def test_bbox_overlaps_by_hand():
    a = np.array([[0, 0, 9, 9]])
    b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [10, 10, 19, 19], [0, 0, 4, 9]])
    # areas 100; overlap 50 -> 50 / 150; disjoint; contained half -> 50 / 100
    np.testing.assert_allclose(B.bbox_overlaps(a, b), [[1, 1 / 3, 0, 0.5]])


def test_nms_by_hand():
    dets = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 29, 29, 0.7],
                     [0, 0, 9, 9, 0.95], [5, 0, 14, 9, 0.6]], np.float32)
    # 3 beats 0 and 1 (IoU 1 and 0.68); 4 overlaps 3 by 1/3 <= 0.5 so survives.
    assert B.nms(dets, 0.5).tolist() == [3, 2, 4]
    assert B.nms(dets, 0.3).tolist() == [3, 2]
    assert B.nms(np.zeros((0, 5)), 0.5).size == 0


def test_nms_is_fast_enough():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (6000, 2))
    wh = rng.uniform(10, 200, (6000, 2))
    dets = np.hstack([xy, xy + wh, rng.random((6000, 1))]).astype(np.float32)
    keep = B.nms(dets, 0.7)
    assert 0 < len(keep) < 6000
    iou = B.bbox_overlaps(dets[keep, :4], dets[keep, :4])
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.7


def test_voc_ap_by_hand():
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2 / 3])
    # Area: recall 0-0.5 at precision 1, 0.5-1 at 2/3 -> 0.8333.
    assert E.voc_ap(rec, prec) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # 11-point: t = 0..0.5 (6 points) -> 1, t = 0.6..1 (5 points) -> 2/3.
    assert E.voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11)


def _roidb(gts):
    return [{"boxes": np.asarray(b, np.float32).reshape(-1, 4),
             "gt_classes": np.asarray(c, np.int32), "difficult": np.asarray(d, bool)}
            for b, c, d in gts]


def test_evaluate_by_hand():
    roidb = _roidb([([[0, 0, 9, 9], [20, 20, 29, 29]], [1, 1], [False, False]),
                    ([[0, 0, 9, 9]], [1], [True])])
    dets = [[np.zeros((0, 5))] * 2,
            [np.array([[0, 0, 9, 9, 0.9],      # TP
                       [0, 0, 9, 9, 0.8],      # duplicate -> FP
                       [21, 21, 30, 30, 0.7]]),  # IoU 81/119 = 0.68: TP at .5, FP at .75
             np.array([[0, 0, 9, 9, 0.95]])]]  # matches a difficult object: ignored
    r = E.evaluate(dets, roidb, ["__background__", "thing"])["per_class"]["thing"]
    assert r["num_gt"] == 2
    # IoU 0.5: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    assert r["voc_ap50"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # IoU 0.75: TP, FP, FP -> AP = recall 0.5 at precision 1 -> 0.5 (COCO 101-point: 51/101).
    assert r["ap75"] == pytest.approx(51 / 101)
    assert r["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_evaluate_perfect_and_empty():
    roidb = _roidb([([[0, 0, 9, 9]], [1], [False])])
    perfect = [[np.zeros((0, 5))], [np.array([[0, 0, 9, 9, 1.0]])]]
    m = E.evaluate(perfect, roidb, ["bg", "a"])["mean"]
    assert m["ap"] == pytest.approx(1) and m["voc07_ap50"] == pytest.approx(1)
    none = [[np.zeros((0, 5))], [np.zeros((0, 5))]]
    assert E.evaluate(none, roidb, ["bg", "a"])["mean"]["ap50"] == 0
