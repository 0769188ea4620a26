"""Box geometry: regression targets and their inverse, clipping, IoU, NMS.

Boxes are (x1, y1, x2, y2) in pixels, inclusive (width = x2 - x1 + 1), as in Fast R-CNN.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# exp() of predicted log-size deltas is capped here: a box at most ~1000x its anchor.
MAX_LOG_SCALE = np.log(1000.0 / 16)


def sizes_and_centres(boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Widths, heights and centres (x, y) of inclusive boxes."""
    w = boxes[..., 2] - boxes[..., 0] + 1.0
    h = boxes[..., 3] - boxes[..., 1] + 1.0
    return w, h, boxes[..., 0] + 0.5 * (w - 1), boxes[..., 1] + 0.5 * (h - 1)


def from_sizes_and_centres(w: np.ndarray, h: np.ndarray, cx: np.ndarray,
                           cy: np.ndarray) -> np.ndarray:
    """The inverse of sizes_and_centres."""
    return np.stack([cx - 0.5 * (w - 1), cy - 0.5 * (h - 1),
                     cx + 0.5 * (w - 1), cy + 0.5 * (h - 1)], axis=-1)


def bbox_transform(ex_rois: np.ndarray, gt_rois: np.ndarray) -> np.ndarray:
    """Regression targets (dx, dy, dw, dh) that move ex_rois onto gt_rois."""
    ew, eh, ecx, ecy = sizes_and_centres(ex_rois)
    gw, gh, gcx, gcy = sizes_and_centres(gt_rois)
    return np.stack([(gcx - ecx) / ew, (gcy - ecy) / eh, np.log(gw / ew), np.log(gh / eh)],
                    axis=-1)


def bbox_transform_inv(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Applies deltas (N, 4k) to boxes (N, 4); returns (N, 4k) predicted boxes."""
    if boxes.shape[0] == 0:
        return np.zeros((0, deltas.shape[1]), dtype=deltas.dtype)
    w, h, cx, cy = sizes_and_centres(boxes.astype(np.float64, copy=False))
    d = deltas.reshape(deltas.shape[0], -1, 4).astype(np.float64)
    pcx = d[..., 0] * w[:, None] + cx[:, None]
    pcy = d[..., 1] * h[:, None] + cy[:, None]
    pw = np.exp(np.minimum(d[..., 2], MAX_LOG_SCALE)) * w[:, None]
    ph = np.exp(np.minimum(d[..., 3], MAX_LOG_SCALE)) * h[:, None]
    return from_sizes_and_centres(pw, ph, pcx, pcy).reshape(deltas.shape).astype(deltas.dtype)


def clip_boxes(boxes: np.ndarray, im_shape: Sequence[int]) -> np.ndarray:
    """Clips (N, 4k) boxes to an image of shape (height, width, ...)."""
    out = boxes.copy()
    out[:, 0::4] = np.clip(out[:, 0::4], 0, im_shape[1] - 1)
    out[:, 1::4] = np.clip(out[:, 1::4], 0, im_shape[0] - 1)
    out[:, 2::4] = np.clip(out[:, 2::4], 0, im_shape[1] - 1)
    out[:, 3::4] = np.clip(out[:, 3::4], 0, im_shape[0] - 1)
    return out


def box_areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def bbox_overlaps(boxes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """IoU matrix (N, K) between boxes (N, 4) and query boxes (K, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    iw = (np.minimum(boxes[:, None, 2], query[None, :, 2])
          - np.maximum(boxes[:, None, 0], query[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], query[None, :, 3])
          - np.maximum(boxes[:, None, 1], query[None, :, 1]) + 1)
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = box_areas(boxes)[:, None] + box_areas(query)[None, :] - inter
    return np.where(inter > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(dets: np.ndarray, thresh: float, max_keep: int = 0) -> np.ndarray:
    """Greedy non-maximum suppression of (N, 5) [x1, y1, x2, y2, score] detections: indices
    kept, best first. Each step suppresses, in one vectorised pass, the remaining boxes that
    overlap the current best by more than thresh. With max_keep > 0 it stops after that many
    (the first max_keep of the full result, at a fraction of the cost)."""
    if dets.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (dets[:, i].astype(np.float64) for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-dets[:, 4], kind="stable")
    keep = []
    while order.size and (max_keep <= 0 or len(keep) < max_keep):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= thresh]
    return np.asarray(keep, dtype=np.int64)
