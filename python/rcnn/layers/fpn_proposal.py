"""FPNProposalLayer: the pycaffe layer around rcnn.rpn.proposals.propose_levels."""
from __future__ import annotations

import caffe

from rcnn.config import cfg
from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str, phase_key
from rcnn.layers.proposal import check_one_image, set_proposal_tops
from rcnn.layers.pyramid_params import pyramid_anchor_params
from rcnn.rpn.proposals import propose_levels
from rcnn.rpn.pyramid import split_levels

NAME = "FPNProposalLayer"


class FPNProposalLayer(caffe.Layer):
    """Bottoms: rpn_cls_prob (1, 2, sum A H W): the softmax over the levels' concatenated
    scores, background then foreground; each level's rpn_bbox_pred (1, 4A, H, W), finest
    first; im_info. Tops: rois (R, 5) of [0, x1, y1, x2, y2], and optionally their scores
    (R, 1). NaN or inf in any bottom raises rcnn.layers.finite.NonFiniteInput (levels
    numbered from 0, the finest)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, NAME)
        self._strides, self._anchors = pyramid_anchor_params(params, NAME)
        self._levels = len(self._strides)
        if len(bottom) != self._levels + 2:
            raise ValueError(f"{NAME}: {self._levels} levels take {self._levels + 2} bottoms "
                             f"(rpn_cls_prob, the levels' rpn_bbox_pred, im_info), got "
                             f"{len(bottom)}")
        self._phase_cfg = cfg[phase_key(self.phase)]
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1)

    def forward(self, bottom, top):
        check_one_image(bottom[0].data, NAME)
        prob = check_finite(NAME, "rpn_cls_prob", bottom[0].data)
        deltas = [check_finite(NAME, f"rpn_bbox_pred of level {i}", bottom[1 + i].data)[0]
                  for i in range(self._levels)]
        im_info = check_finite(NAME, "im_info", bottom[-1].data)[0]
        shapes = [d.shape[-2:] for d in deltas]
        a = self._anchors[0].shape[0]
        scores = split_levels(prob[0, 1].ravel(), shapes, a)
        boxes, s = propose_levels(scores, deltas, im_info, self._anchors, self._strides,
                                  self._phase_cfg)
        set_proposal_tops(top, boxes, s)

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
