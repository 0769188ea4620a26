"""ProposalLayer: the pycaffe layer around rcnn.rpn.proposals.propose."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.config import cfg
from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str, phase_key
from rcnn.rpn.anchors import anchor_params
from rcnn.rpn.proposals import propose


def check_one_image(scores: np.ndarray, layer: str) -> None:
    """The proposal layers take one image per batch; a clear error otherwise."""
    if scores.shape[0] != 1:
        raise ValueError(f"{layer}: only one image per batch is supported, got "
                         f"{scores.shape[0]}")


def set_proposal_tops(top, boxes: np.ndarray, scores: np.ndarray) -> None:
    """Tops of a proposal layer: rois (R, 5) of [0, x1, y1, x2, y2], and optionally their
    scores (R, 1)."""
    top[0].reshape(len(boxes), 5)
    top[0].data[...] = np.hstack([np.zeros((len(boxes), 1)), boxes])
    if len(top) > 1:
        top[1].reshape(len(boxes), 1)
        top[1].data[...] = scores[:, None]


class ProposalLayer(caffe.Layer):
    """Bottoms: rpn_cls_prob_reshape (1, 2A, H, W), rpn_bbox_pred (1, 4A, H, W), im_info.
    Tops: rois (R, 5) of [0, x1, y1, x2, y2], and optionally their scores (R, 1).
    NaN or inf in any bottom raises rcnn.layers.finite.NonFiniteInput."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "ProposalLayer")
        self._stride, self._anchors = anchor_params(params, cfg.MODEL)
        self._phase_cfg = cfg[phase_key(self.phase)]
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1)

    def forward(self, bottom, top):
        check_one_image(bottom[0].data, "ProposalLayer")
        a = self._anchors.shape[0]
        scores = check_finite("ProposalLayer", "rpn_cls_prob_reshape", bottom[0].data)[0, a:]
        deltas = check_finite("ProposalLayer", "rpn_bbox_pred", bottom[1].data)[0]
        im_info = check_finite("ProposalLayer", "im_info", bottom[2].data)[0]
        boxes, s = propose(scores, deltas, im_info, self._anchors, self._stride,
                           self._phase_cfg)
        set_proposal_tops(top, boxes, s)

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
