"""AnchorTargetLayer: the pycaffe layer around rcnn.rpn.anchor_targets."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.config import cfg
from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str
from rcnn.rpn.anchor_targets import anchor_targets
from rcnn.rpn.anchors import anchor_params, shifted_anchors


class AnchorTargetLayer(caffe.Layer):
    """Bottoms: rpn_cls_score (for H x W), gt_boxes, im_info, data. Tops: rpn_labels
    (1, 1, A*H, W), rpn_bbox_targets, rpn_bbox_inside_weights, rpn_bbox_outside_weights
    (1, 4A, H, W). NaN or inf in gt_boxes or im_info raises
    rcnn.layers.finite.NonFiniteInput (rpn_cls_score gives only its shape)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "AnchorTargetLayer")
        self._stride, self._anchors = anchor_params(params, cfg.MODEL)
        self._train = cfg.TRAIN
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
        gt_boxes = check_finite("AnchorTargetLayer", "gt_boxes", bottom[1].data)
        im_info = check_finite("AnchorTargetLayer", "im_info", bottom[2].data)[0]
        labels, targets, inside_w, outside_w = anchor_targets(
            anchors, gt_boxes, im_info, self._rng, self._train, self._allowed_border)
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
