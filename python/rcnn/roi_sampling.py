"""The detection head's training RoIs: a balanced sample of foreground and background
proposals per image, with their class labels and class-specific regression targets."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rcnn.boxes import bbox_overlaps, bbox_transform
from rcnn.config import AttrDict


def expand_targets(labels: np.ndarray, deltas: np.ndarray, num_classes: int,
                   inside_weights: Sequence[float]):
    """Class-specific (N, 4 * num_classes) targets and inside weights: each foreground RoI
    gets its 4 deltas, and inside_weights, in its class's slot."""
    n = labels.shape[0]
    targets = np.zeros((n, 4 * num_classes), dtype=np.float32)
    weights = np.zeros_like(targets)
    for i in np.where(labels > 0)[0]:
        c = int(labels[i])
        targets[i, 4 * c:4 * c + 4] = deltas[i]
        weights[i, 4 * c:4 * c + 4] = inside_weights
    return targets, weights


def sample_rois(rois: np.ndarray, gt_boxes: np.ndarray, num_classes: int,
                rng: np.random.Generator, train: AttrDict):
    """From candidate rois (R, 5) and gt_boxes (G, 5) [x1, y1, x2, y2, class]: up to
    TRAIN.BATCH_SIZE RoIs, FG_FRACTION of them foreground (IoU >= FG_THRESH with a gt box),
    the rest background (IoU in [BG_THRESH_LO, BG_THRESH_HI)). Returns rois, labels,
    normalised class-specific targets, inside and outside weights. `train` is the config's
    TRAIN section."""
    gt = gt_boxes if gt_boxes.size else np.zeros((0, 5), dtype=np.float32)
    # The ground truth boxes are candidates too.
    all_rois = np.vstack([rois[:, :5], np.hstack([np.zeros((len(gt), 1)), gt[:, :4]])])
    if len(gt):
        overlaps = bbox_overlaps(all_rois[:, 1:5], gt[:, :4])
        assign = overlaps.argmax(axis=1)
        max_ov = overlaps.max(axis=1)
        labels = gt[assign, 4]
    else:
        assign = np.zeros(len(all_rois), dtype=np.int64)
        max_ov = np.zeros(len(all_rois))
        labels = np.zeros(len(all_rois))
    per_image = train.BATCH_SIZE
    fg = np.where(max_ov >= train.FG_THRESH)[0]
    n_fg = min(int(round(train.FG_FRACTION * per_image)), fg.size)
    if fg.size > n_fg:
        fg = rng.choice(fg, n_fg, replace=False)
    bg = np.where((max_ov < train.BG_THRESH_HI) & (max_ov >= train.BG_THRESH_LO))[0]
    n_bg = min(per_image - n_fg, bg.size)
    if bg.size > n_bg:
        bg = rng.choice(bg, n_bg, replace=False)
    keep = np.concatenate([fg, bg]).astype(np.int64)
    labels = labels[keep].astype(np.float32)
    labels[n_fg:] = 0
    out_rois = all_rois[keep].astype(np.float32)
    if len(gt):
        deltas = bbox_transform(out_rois[:, 1:5], gt[assign[keep], :4])
    else:
        deltas = np.zeros((len(keep), 4))
    if train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
        deltas = (deltas - np.asarray(train.BBOX_NORMALIZE_MEANS)) / np.asarray(
            train.BBOX_NORMALIZE_STDS)
    targets, inside_w = expand_targets(labels, deltas.astype(np.float32), num_classes,
                                        train.BBOX_INSIDE_WEIGHTS)
    outside_w = (inside_w > 0).astype(np.float32)
    return out_rois, labels, targets, inside_w, outside_w
