"""The RPN's training targets: which anchors are foreground, background or ignored, and the
regression targets of the foreground ones."""
from __future__ import annotations

import numpy as np

from rcnn.boxes import bbox_overlaps, bbox_transform
from rcnn.config import AttrDict


def anchor_targets(anchors: np.ndarray, gt_boxes: np.ndarray, im_info: np.ndarray,
                   rng: np.random.Generator, train: AttrDict,
                   allowed_border: float = 0.0):
    """For all anchors (K, 4) of one image: labels (1 fg, 0 bg, -1 ignored), targets (K, 4),
    inside and outside weights (K, 4). Anchors crossing the image border (by more than
    allowed_border) are ignored. `train` is the config's TRAIN section (RPN_* keys)."""
    k = anchors.shape[0]
    labels = np.full(k, -1, dtype=np.float32)
    targets = np.zeros((k, 4), dtype=np.float32)
    inside_w = np.zeros((k, 4), dtype=np.float32)
    outside_w = np.zeros((k, 4), dtype=np.float32)
    im_h, im_w = float(im_info[0]), float(im_info[1])
    inside = np.where((anchors[:, 0] >= -allowed_border) & (anchors[:, 1] >= -allowed_border)
                      & (anchors[:, 2] < im_w + allowed_border)
                      & (anchors[:, 3] < im_h + allowed_border))[0]
    if inside.size == 0:
        return labels, targets, inside_w, outside_w
    a = anchors[inside]
    lab = np.full(inside.size, -1, dtype=np.float32)
    gt = gt_boxes[:, :4] if gt_boxes.size else np.zeros((0, 4))
    if gt.shape[0]:
        overlaps = bbox_overlaps(a, gt)
        argmax = overlaps.argmax(axis=1)
        max_ov = overlaps[np.arange(inside.size), argmax]
        gt_max = overlaps.max(axis=0)
        best_for_gt = np.where((overlaps == gt_max[None, :]) & (gt_max[None, :] > 0))[0]
        if not train.RPN_CLOBBER_POSITIVES:
            lab[max_ov < train.RPN_NEGATIVE_OVERLAP] = 0
        lab[best_for_gt] = 1
        lab[max_ov >= train.RPN_POSITIVE_OVERLAP] = 1
        if train.RPN_CLOBBER_POSITIVES:
            lab[max_ov < train.RPN_NEGATIVE_OVERLAP] = 0
        targets[inside] = bbox_transform(a, gt[argmax]).astype(np.float32)
    else:
        lab[:] = 0
    num_fg = int(train.RPN_FG_FRACTION * train.RPN_BATCHSIZE)
    fg = np.where(lab == 1)[0]
    if fg.size > num_fg:
        lab[rng.choice(fg, fg.size - num_fg, replace=False)] = -1
    num_bg = train.RPN_BATCHSIZE - int((lab == 1).sum())
    bg = np.where(lab == 0)[0]
    if bg.size > num_bg:
        lab[rng.choice(bg, bg.size - num_bg, replace=False)] = -1
    labels[inside] = lab
    inside_w[inside[lab == 1]] = np.asarray(train.RPN_BBOX_INSIDE_WEIGHTS, dtype=np.float32)
    num_examples = max(int((lab >= 0).sum()), 1)
    if train.RPN_POSITIVE_WEIGHT < 0:
        pos_w = neg_w = 1.0 / num_examples
    else:
        pos_w = train.RPN_POSITIVE_WEIGHT / max(int((lab == 1).sum()), 1)
        neg_w = (1.0 - train.RPN_POSITIVE_WEIGHT) / max(int((lab == 0).sum()), 1)
    outside_w[inside[lab == 1]] = pos_w
    outside_w[inside[lab == 0]] = neg_w
    return labels, targets, inside_w, outside_w
