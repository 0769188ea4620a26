"""VOC and COCO-style AP on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn import evaluation as E


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
