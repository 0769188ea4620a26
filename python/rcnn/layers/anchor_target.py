"""AnchorTargetLayer: labels and regression targets of the RPN's anchors for one image."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.boxes import bbox_overlaps, bbox_transform, generate_anchors, shifted_anchors
from rcnn.config import cfg
from rcnn.layers.params import parse_param_str


def anchor_params(params: dict) -> tuple[int, np.ndarray]:
    stride = int(params.get("feat_stride", cfg.MODEL.FEAT_STRIDE))
    anchors = generate_anchors(16, params.get("ratios", cfg.MODEL.ANCHOR_RATIOS),
                               params.get("scales", cfg.MODEL.ANCHOR_SCALES))
    return stride, anchors


def anchor_targets(anchors: np.ndarray, gt_boxes: np.ndarray, im_info: np.ndarray,
                   rng: np.random.Generator, allowed_border: float = 0.0):
    """For all anchors (K, 4) of one image: labels (1 fg, 0 bg, -1 ignored), targets (K, 4),
    inside and outside weights (K, 4). Anchors crossing the image border are ignored."""
    tc = cfg.TRAIN
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
        if not tc.RPN_CLOBBER_POSITIVES:
            lab[max_ov < tc.RPN_NEGATIVE_OVERLAP] = 0
        lab[best_for_gt] = 1
        lab[max_ov >= tc.RPN_POSITIVE_OVERLAP] = 1
        if tc.RPN_CLOBBER_POSITIVES:
            lab[max_ov < tc.RPN_NEGATIVE_OVERLAP] = 0
        targets[inside] = bbox_transform(a, gt[argmax]).astype(np.float32)
    else:
        lab[:] = 0
    num_fg = int(tc.RPN_FG_FRACTION * tc.RPN_BATCHSIZE)
    fg = np.where(lab == 1)[0]
    if fg.size > num_fg:
        lab[rng.choice(fg, fg.size - num_fg, replace=False)] = -1
    num_bg = tc.RPN_BATCHSIZE - int((lab == 1).sum())
    bg = np.where(lab == 0)[0]
    if bg.size > num_bg:
        lab[rng.choice(bg, bg.size - num_bg, replace=False)] = -1
    labels[inside] = lab
    inside_w[inside[lab == 1]] = np.asarray(tc.RPN_BBOX_INSIDE_WEIGHTS, dtype=np.float32)
    num_examples = max(int((lab >= 0).sum()), 1)
    if tc.RPN_POSITIVE_WEIGHT < 0:
        pos_w = neg_w = 1.0 / num_examples
    else:
        pos_w = tc.RPN_POSITIVE_WEIGHT / max(int((lab == 1).sum()), 1)
        neg_w = (1.0 - tc.RPN_POSITIVE_WEIGHT) / max(int((lab == 0).sum()), 1)
    outside_w[inside[lab == 1]] = pos_w
    outside_w[inside[lab == 0]] = neg_w
    return labels, targets, inside_w, outside_w


class AnchorTargetLayer(caffe.Layer):
    """Bottoms: rpn_cls_score (for H x W), gt_boxes, im_info, data. Tops: rpn_labels
    (1, 1, A*H, W), rpn_bbox_targets, rpn_bbox_inside_weights, rpn_bbox_outside_weights
    (1, 4A, H, W)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "AnchorTargetLayer")
        self._stride, self._anchors = anchor_params(params)
        self._allowed_border = float(params.get("allowed_border", 0))
        self._rng = np.random.default_rng(cfg.RNG_SEED)
        a = self._anchors.shape[0]
        h, w = bottom[0].data.shape[-2:]
        top[0].reshape(1, 1, a * h, w)
        for i in range(1, 4):
            top[i].reshape(1, 4 * a, h, w)

    def forward(self, bottom, top):
        h, w = bottom[0].data.shape[-2:]
        a = self._anchors.shape[0]
        anchors = shifted_anchors(self._anchors, h, w, self._stride)
        labels, targets, inside_w, outside_w = anchor_targets(
            anchors, bottom[1].data, bottom[2].data[0], self._rng, self._allowed_border)
        top[0].reshape(1, 1, a * h, w)
        top[0].data[...] = labels.reshape(1, h, w, a).transpose(0, 3, 1, 2).reshape(
            1, 1, a * h, w)
        # (pycaffe's top is indexable but cannot be sliced)
        for i, values in enumerate((targets, inside_w, outside_w), start=1):
            top[i].reshape(1, 4 * a, h, w)
            top[i].data[...] = values.reshape(1, h, w, 4 * a).transpose(0, 3, 1, 2)

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
