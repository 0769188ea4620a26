"""ProposalTargetLayer: samples RoIs for the detection head and assigns their targets."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.boxes import bbox_overlaps, bbox_transform
from rcnn.config import cfg
from rcnn.layers.params import parse_param_str


def expand_targets(labels: np.ndarray, deltas: np.ndarray, num_classes: int):
    """Class-specific (N, 4 * num_classes) targets and inside weights: each foreground RoI
    gets its 4 deltas in its class's slot."""
    n = labels.shape[0]
    targets = np.zeros((n, 4 * num_classes), dtype=np.float32)
    weights = np.zeros_like(targets)
    for i in np.where(labels > 0)[0]:
        c = int(labels[i])
        targets[i, 4 * c:4 * c + 4] = deltas[i]
        weights[i, 4 * c:4 * c + 4] = cfg.TRAIN.BBOX_INSIDE_WEIGHTS
    return targets, weights


def sample_rois(rois: np.ndarray, gt_boxes: np.ndarray, num_classes: int,
                rng: np.random.Generator):
    """From candidate rois (R, 5) and gt_boxes (G, 5) [x1, y1, x2, y2, class]: up to
    TRAIN.BATCH_SIZE RoIs, FG_FRACTION of them foreground (IoU >= FG_THRESH with a gt box),
    the rest background (IoU in [BG_THRESH_LO, BG_THRESH_HI)). Returns rois, labels,
    normalised class-specific targets, inside and outside weights."""
    tc = cfg.TRAIN
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
    per_image = tc.BATCH_SIZE
    fg = np.where(max_ov >= tc.FG_THRESH)[0]
    n_fg = min(int(round(tc.FG_FRACTION * per_image)), fg.size)
    if fg.size > n_fg:
        fg = rng.choice(fg, n_fg, replace=False)
    bg = np.where((max_ov < tc.BG_THRESH_HI) & (max_ov >= tc.BG_THRESH_LO))[0]
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
    if tc.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
        deltas = (deltas - np.asarray(tc.BBOX_NORMALIZE_MEANS)) / np.asarray(
            tc.BBOX_NORMALIZE_STDS)
    targets, inside_w = expand_targets(labels, deltas.astype(np.float32), num_classes)
    outside_w = (inside_w > 0).astype(np.float32)
    return out_rois, labels, targets, inside_w, outside_w


class ProposalTargetLayer(caffe.Layer):
    """Bottoms: rpn_rois (R, 5), gt_boxes (G, 5). Tops: rois, labels, bbox_targets,
    bbox_inside_weights, bbox_outside_weights."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "ProposalTargetLayer")
        if "num_classes" not in params:
            raise ValueError("ProposalTargetLayer: param_str must give 'num_classes'")
        self._num_classes = int(params["num_classes"])
        self._rng = np.random.default_rng(cfg.RNG_SEED + 1)
        top[0].reshape(1, 5)
        top[1].reshape(1, 1)
        for i in range(2, 5):
            top[i].reshape(1, 4 * self._num_classes)

    def forward(self, bottom, top):
        gt = bottom[1].data
        if gt.size and (gt[:, 4].max() >= self._num_classes or gt[:, 4].min() < 1):
            raise ValueError(f"ProposalTargetLayer: gt_boxes class labels must be in [1, "
                             f"{self._num_classes}), got {sorted(set(gt[:, 4].tolist()))}")
        blobs = sample_rois(bottom[0].data, gt, self._num_classes, self._rng)
        # rois (N, 5), labels (N,), targets and weights (N, 4 * num_classes)
        for i in range(min(len(top), len(blobs))):
            top[i].reshape(*blobs[i].shape)
            top[i].data[...] = blobs[i]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
