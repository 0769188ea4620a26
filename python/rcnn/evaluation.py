"""Detection evaluation: PASCAL VOC AP (2007 11-point and area under the curve) and
COCO-style AP over IoU 0.50:0.05:0.95 (101-point interpolation), per class and mean; and, for
COCO-format datasets, pycocotools' COCOeval (AP, AP50, AP75, APs, APm, APl and the recalls).

Detections: per class, a list over images of (K, 5) arrays [x1, y1, x2, y2, score].
Ground truth: the roidb (boxes, gt_classes, difficult); difficult objects neither count as
positives nor make a detection false.

Every mean is over the classes present in the test set, those with at least one
non-difficult object, as COCOeval leaves out the categories without ground truth: a class
absent from the test set has "num_gt": 0, "absent": true and -1 for each of its AP figures
(undefined, COCOeval's -1), whatever its detections, and counts in no mean. A mean with no
class to average over is -1.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rcnn.boxes import bbox_overlaps, box_areas

log = logging.getLogger(__name__)

# COCOeval's thresholds, to the last bit (0.8999999999999999 included)
COCO_IOUS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a precision/recall curve: VOC 2007's 11-point mean of the interpolated
    precision at recall 0, 0.1, ..., 1, or the area under the interpolated curve."""
    if use_07_metric:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def coco_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO's 101-point interpolated AP."""
    if recall.size == 0:
        return 0.0
    mpre = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean([mpre[i] if i < len(mpre) else 0.0 for i in idx]))


# COCO's object size ranges (box area in pixels): small, medium, large.
AREA_RANGES = {"s": (0.0, 32.0 ** 2), "m": (32.0 ** 2, 96.0 ** 2), "l": (96.0 ** 2, np.inf)}


def in_area_range(boxes: np.ndarray, area_range: tuple[float, float] | None) -> np.ndarray:
    """Which inclusive boxes (N, 4+) have an area (x2 - x1 + 1)(y2 - y1 + 1) in [lo, hi],
    bounds included as COCOeval includes them (all: None)."""
    if area_range is None:
        return np.ones(boxes.shape[0], dtype=bool)
    area = box_areas(boxes[:, :4]) if boxes.shape[0] else np.zeros(0)
    return (area >= area_range[0]) & (area <= area_range[1])


def match_class(dets: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                difficult: Sequence[np.ndarray], iou: float,
                area_range: tuple[float, float] | None = None):
    """Greedy matching, highest score first, of one class's detections over all images.
    Returns (scores, true-positive flags, counted flags, number of positives). With an
    area_range, as COCOeval's: ground truth outside it is ignored like a difficult object,
    and a detection outside it that matches nothing is not counted."""
    scores, tp, counted = [], [], []
    ignored = [d | ~in_area_range(g, area_range) for d, g in zip(difficult, gts, strict=True)]
    npos = int(sum((~d).sum() for d in ignored))
    for det, gt, diff in zip(dets, gts, ignored, strict=True):
        if det.shape[0] == 0:
            continue
        order = np.argsort(-det[:, 4], kind="stable")
        det = det[order]
        det_inside = in_area_range(det, area_range)
        used = np.zeros(gt.shape[0], dtype=bool)
        ov = bbox_overlaps(det[:, :4], gt) if gt.shape[0] else np.zeros((det.shape[0], 0))
        for k in range(det.shape[0]):
            scores.append(det[k, 4])
            j = int(np.argmax(ov[k])) if ov.shape[1] else -1
            if j >= 0 and ov[k, j] >= iou:
                if diff[j]:
                    tp.append(False)
                    counted.append(False)
                    continue
                if not used[j]:
                    used[j] = True
                    tp.append(True)
                    counted.append(True)
                    continue
            tp.append(False)
            counted.append(bool(det_inside[k]))
    return np.asarray(scores), np.asarray(tp, bool), np.asarray(counted, bool), npos


def pr_curve(scores: np.ndarray, tp: np.ndarray, counted: np.ndarray, npos: int):
    order = np.argsort(-scores, kind="stable")
    tp, counted = tp[order][counted[order]], counted[order][counted[order]]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / max(npos, 1)
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return recall, precision


AP_KEYS = ("ap", "ap50", "ap75", "voc07_ap50", "voc_ap50", "aps", "apm", "apl")


def mean_over_present(values: Sequence[float]) -> float:
    """The mean of the defined values (>= 0; -1 marks an undefined one), -1 if none is."""
    defined = [v for v in values if v >= 0]
    return float(np.mean(defined)) if defined else -1.0


def evaluate(all_dets: Sequence[Sequence[np.ndarray]], roidb: Sequence[dict[str, Any]],
             classes: Sequence[str]) -> dict[str, Any]:
    """all_dets[c][i]: detections of class c (1..C-1) in image i. Returns per-class and mean
    VOC07 AP50, VOC AP50 (area), COCO AP, AP50, AP75, and AP[.5:.95] by object size: aps,
    apm, apl for COCO's small (area < 32^2), medium (up to 96^2) and large objects (-1 where
    no object has that size).

    "per_class"[name] also holds num_gt (non-difficult objects), num_gt_s / _m / _l and
    absent (num_gt == 0: every AP figure of the class is -1). Each "mean" figure is over the
    classes where it is defined: the classes present in the test set (aps / apm / apl: those
    with an object of that size), -1 if there is none; "absent_classes" lists the others."""
    per_class: dict[str, dict[str, Any]] = {}
    for c in range(1, len(classes)):
        gts = [e["boxes"][e["gt_classes"] == c] for e in roidb]
        diffs = [e.get("difficult", np.zeros(len(e["gt_classes"]), bool))[e["gt_classes"] == c]
                 for e in roidb]
        dets = [np.asarray(d).reshape(-1, 5) for d in all_dets[c]]
        res: dict[str, float] = {}
        coco = []
        for k, iou in enumerate(COCO_IOUS):
            rec, prec = pr_curve(*match_class(dets, gts, diffs, iou))
            ap = coco_ap(rec, prec)
            coco.append(ap)
            if k == 0:    # 0.5
                res["voc07_ap50"] = voc_ap(rec, prec, use_07_metric=True)
                res["voc_ap50"] = voc_ap(rec, prec)
                res["ap50"] = ap
            if k == 5:    # 0.75
                res["ap75"] = ap
        res["ap"] = float(np.mean(coco))
        res["num_gt"] = int(sum((~d).sum() for d in diffs))
        res["absent"] = res["num_gt"] == 0
        if res["absent"]:   # no positive: AP undefined, whatever the detections
            res.update(dict.fromkeys(("ap", "ap50", "ap75", "voc07_ap50", "voc_ap50"), -1.0))
        for size, area_range in AREA_RANGES.items():
            npos, aps = 0, []
            for iou in COCO_IOUS:
                scores, tp, counted, npos = match_class(dets, gts, diffs, iou, area_range)
                aps.append(coco_ap(*pr_curve(scores, tp, counted, npos)))
            # -1 where the class has no object of that size, as COCOeval
            res[f"ap{size}"] = float(np.mean(aps)) if npos else -1.0
            res[f"num_gt_{size}"] = npos
        per_class[classes[c]] = res
    mean = {k: mean_over_present([r[k] for r in per_class.values()]) for k in AP_KEYS}
    return {"mean": mean, "per_class": per_class,
            "absent_classes": [name for name, r in per_class.items() if r["absent"]]}


COCOEVAL_STATS = ("ap", "ap50", "ap75", "aps", "apm", "apl", "ar1", "ar10", "ar100", "ars",
                  "arm", "arl")


def coco_results(all_dets: Sequence[Sequence[np.ndarray]], roidb: Sequence[dict[str, Any]],
                 category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Detections in COCO's result format; class c is category_ids[c - 1], roidb entries
    carry their COCO image "id", and boxes go from inclusive pixels to [x, y, w, h]."""
    out = []
    for c, cid in enumerate(category_ids, start=1):
        for i, e in enumerate(roidb):
            for x1, y1, x2, y2, score in np.asarray(all_dets[c][i]).reshape(-1, 5).tolist():
                out.append({"image_id": e["id"], "category_id": cid, "score": score,
                            "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1]})
    return out


# COCOeval's area ranges of APs / APm / APl (and ARs / ARm / ARl), from its Params.
COCOEVAL_AREAS = {"s": (0.0, 32.0 ** 2), "m": (32.0 ** 2, 96.0 ** 2), "l": (96.0 ** 2, 1e10)}


def _cocoeval_without_results(coco_gt, image_ids: Sequence[int], classes: Sequence[str],
                              category_ids: Sequence[int]) -> dict[str, Any]:
    """What COCOeval would say of no detections at all (its loadRes refuses an empty list):
    0 where there is ground truth to find, -1 where there is none."""
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=list(image_ids),
                                              catIds=list(category_ids), iscrowd=False))
    present = {a["category_id"] for a in anns}
    mean = dict.fromkeys(COCOEVAL_STATS, 0.0 if anns else -1.0)
    for size, (lo, hi) in COCOEVAL_AREAS.items():
        found = any(lo <= a["area"] <= hi for a in anns)
        mean[f"ap{size}"] = mean[f"ar{size}"] = 0.0 if found else -1.0
    return {"mean": mean, "per_class": {name: 0.0 if cid in present else -1.0
                                        for name, cid in zip(classes[1:], category_ids,
                                                             strict=True)}}


def cocoeval(coco_gt, results: list[dict[str, Any]], image_ids: Sequence[int],
             classes: Sequence[str], category_ids: Sequence[int],
             iou_type: str = "bbox") -> dict[str, Any]:
    """pycocotools' COCOeval (iou_type "bbox" or "segm") of `results` on image_ids of coco_gt
    (a pycocotools COCO): the 12 summary figures and the AP of each class, -1 where undefined
    (a category without ground truth in these images is in no mean, COCOeval's rule); its
    summary table is logged."""
    from pycocotools.cocoeval import COCOeval

    from rcnn.datasets.coco import quietly

    if not results:
        return _cocoeval_without_results(coco_gt, image_ids, classes, category_ids)
    dt = quietly(coco_gt.loadRes, results)
    ev = COCOeval(coco_gt, dt, iou_type)
    ev.params.imgIds = list(image_ids)
    ev.params.catIds = list(category_ids)
    quietly(ev.evaluate)
    quietly(ev.accumulate)
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        ev.summarize()
    for line in table.getvalue().splitlines():
        log.info("COCOeval %s", line.strip())
    precision = ev.eval["precision"]     # [iou, recall, class, area, max dets]
    per_class = {}
    for k, name in enumerate(classes[1:]):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return {"mean": {k: float(v) for k, v in zip(COCOEVAL_STATS, ev.stats, strict=True)},
            "per_class": per_class}
