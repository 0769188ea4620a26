"""ProposalLayer: the pycaffe layer around rcnn.rpn.proposals.propose."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.config import cfg
from rcnn.layers.params import parse_param_str, phase_key
from rcnn.rpn.anchors import anchor_params
from rcnn.rpn.proposals import propose


class ProposalLayer(caffe.Layer):
    """Bottoms: rpn_cls_prob_reshape (1, 2A, H, W), rpn_bbox_pred (1, 4A, H, W), im_info.
    Tops: rois (R, 5) of [0, x1, y1, x2, y2], and optionally their scores (R, 1)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "ProposalLayer")
        self._stride, self._anchors = anchor_params(params, cfg.MODEL)
        self._phase_cfg = cfg[phase_key(self.phase)]
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1)

    def forward(self, bottom, top):
        if bottom[0].data.shape[0] != 1:
            raise ValueError("ProposalLayer: only one image per batch is supported, got "
                             f"{bottom[0].data.shape[0]}")
        a = self._anchors.shape[0]
        scores = bottom[0].data[0, a:, :, :]
        boxes, s = propose(scores, bottom[1].data[0], bottom[2].data[0], self._anchors,
                           self._stride, self._phase_cfg)
        top[0].reshape(len(boxes), 5)
        top[0].data[...] = np.hstack([np.zeros((len(boxes), 1)), boxes])
        if len(top) > 1:
            top[1].reshape(len(boxes), 1)
            top[1].data[...] = s[:, None]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
