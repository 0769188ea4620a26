"""Region proposals: the RPN's anchor scores and deltas decoded into boxes, filtered and
suppressed."""
from __future__ import annotations

import numpy as np

from rcnn.boxes import bbox_transform_inv, clip_boxes, nms
from rcnn.config import AttrDict
from rcnn.rpn.anchors import shifted_anchors


def propose(scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray,
            anchors: np.ndarray, stride: int,
            phase: AttrDict) -> tuple[np.ndarray, np.ndarray]:
    """scores (A, H, W) foreground probabilities, deltas (4A, H, W) for one image ->
    proposals (R, 4) and their scores (R,), after clipping, the minimum-size filter, the
    pre-NMS top N, NMS and the post-NMS top N of `phase` (the config's TRAIN or TEST
    section). Never empty: when every box is filtered out, the best-scoring one is kept."""
    a, h, w = scores.shape
    all_anchors = shifted_anchors(anchors, h, w, stride)
    s = scores.transpose(1, 2, 0).reshape(-1)
    d = deltas.reshape(a, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)
    boxes = clip_boxes(bbox_transform_inv(all_anchors, d), im_info[:2])
    min_size = phase.RPN_MIN_SIZE * float(im_info[2])
    ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    keep = np.where((ws >= min_size) & (hs >= min_size))[0]
    if keep.size == 0:
        keep = np.array([int(np.argmax(s))])
    boxes, s = boxes[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    if phase.RPN_PRE_NMS_TOP_N > 0:
        order = order[:phase.RPN_PRE_NMS_TOP_N]
    boxes, s = boxes[order], s[order]
    keep = nms(np.hstack([boxes, s[:, None]]), phase.RPN_NMS_THRESH)
    if phase.RPN_POST_NMS_TOP_N > 0:
        keep = keep[:phase.RPN_POST_NMS_TOP_N]
    return boxes[keep], s[keep]
