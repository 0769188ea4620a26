"""Region proposals: the RPN's anchor scores and deltas decoded into boxes, filtered and
suppressed; on one feature map (py-faster-rcnn) or over the levels of a feature pyramid
(Detectron / maskrcnn-benchmark: top-k per level, then NMS over all levels together)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rcnn.boxes import bbox_transform_inv, clip_boxes, nms
from rcnn.config import AttrDict
from rcnn.rpn.anchors import shifted_anchors


def decode(scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray, anchors: np.ndarray,
           stride: int, min_size: float) -> tuple[np.ndarray, np.ndarray]:
    """scores (A, H, W) foreground probabilities and deltas (4A, H, W) of one map -> boxes
    (K, 4) clipped to the image and their scores (K,), in (y, x, anchor) order, without the
    boxes smaller than min_size (pixels of the scaled image) on either side."""
    a, h, w = scores.shape
    all_anchors = shifted_anchors(anchors, h, w, stride)
    s = scores.transpose(1, 2, 0).reshape(-1)
    d = deltas.reshape(a, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)
    boxes = clip_boxes(bbox_transform_inv(all_anchors, d), im_info[:2])
    ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    keep = np.where((ws >= min_size) & (hs >= min_size))[0]
    return boxes[keep], s[keep]


def top_k(boxes: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scoring boxes, best first (all of them, sorted, when k <= 0); ties keep
    their order."""
    order = np.argsort(-scores, kind="stable")
    if k > 0:
        order = order[:k]
    return boxes[order], scores[order]


def suppress(boxes: np.ndarray, scores: np.ndarray, thresh: float,
             post_top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """NMS at thresh over boxes sorted best first, then the post_top_n best (all when <= 0)."""
    keep = nms(np.hstack([boxes, scores[:, None]]), thresh, max_keep=post_top_n)
    return boxes[keep], scores[keep]


def propose(scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray,
            anchors: np.ndarray, stride: int,
            phase: AttrDict) -> tuple[np.ndarray, np.ndarray]:
    """scores (A, H, W) foreground probabilities, deltas (4A, H, W) for one image ->
    proposals (R, 4) and their scores (R,), after clipping, the minimum-size filter, the
    pre-NMS top N, NMS and the post-NMS top N of `phase` (the config's TRAIN or TEST
    section). Never empty: when every box is filtered out, the best-scoring one is kept."""
    min_size = phase.RPN_MIN_SIZE * float(im_info[2])
    boxes, s = decode(scores, deltas, im_info, anchors, stride, min_size)
    if boxes.shape[0] == 0:
        boxes, s = _best_unfiltered([scores], [deltas], im_info, [anchors], [stride])
    boxes, s = top_k(boxes, s, phase.RPN_PRE_NMS_TOP_N)
    return suppress(boxes, s, phase.RPN_NMS_THRESH, phase.RPN_POST_NMS_TOP_N)


def propose_levels(scores: Sequence[np.ndarray], deltas: Sequence[np.ndarray],
                   im_info: np.ndarray, anchors: Sequence[np.ndarray],
                   strides: Sequence[int], phase: AttrDict) -> tuple[np.ndarray, np.ndarray]:
    """Proposals over a feature pyramid: per level (scores[l] (A, H_l, W_l), deltas[l]
    (4A, H_l, W_l), its base anchors and stride) the boxes are decoded, clipped and
    size-filtered and the RPN_PRE_NMS_TOP_N best kept; then one NMS over the boxes of all
    levels and the RPN_POST_NMS_TOP_N best. Never empty, like propose()."""
    min_size = phase.RPN_MIN_SIZE * float(im_info[2])
    per_level = [top_k(*decode(s, d, im_info, a, st, min_size), phase.RPN_PRE_NMS_TOP_N)
                 for s, d, a, st in zip(scores, deltas, anchors, strides, strict=True)]
    boxes = np.concatenate([b for b, _ in per_level])
    s = np.concatenate([v for _, v in per_level])
    if boxes.shape[0] == 0:
        boxes, s = _best_unfiltered(scores, deltas, im_info, anchors, strides)
    boxes, s = top_k(boxes, s, 0)
    return suppress(boxes, s, phase.RPN_NMS_THRESH, phase.RPN_POST_NMS_TOP_N)


def _best_unfiltered(scores: Sequence[np.ndarray], deltas: Sequence[np.ndarray],
                     im_info: np.ndarray, anchors: Sequence[np.ndarray],
                     strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The best-scoring box of all levels, ignoring the size filter."""
    best = [decode(s, d, im_info, a, st, -np.inf)
            for s, d, a, st in zip(scores, deltas, anchors, strides, strict=True)]
    boxes = np.concatenate([b for b, _ in best])
    s = np.concatenate([v for _, v in best])
    i = int(np.argmax(s))
    return boxes[i:i + 1], s[i:i + 1]
