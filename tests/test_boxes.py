"""Box geometry and NMS on hand-computed cases."""
from __future__ import annotations

import numpy as np
from rcnn import boxes as B


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
