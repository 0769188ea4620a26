"""FPNAnchorTargetLayer: the pycaffe layer around rcnn.rpn.pyramid.pyramid_anchor_targets."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.config import cfg
from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str
from rcnn.layers.pyramid_params import pyramid_anchor_params
from rcnn.rpn.pyramid import pyramid_anchor_targets

NAME = "FPNAnchorTargetLayer"


class FPNAnchorTargetLayer(caffe.Layer):
    """Bottoms: one RPN output per level, finest first (for its H x W: any (1, C, H, W)
    blob), gt_boxes, im_info. Tops: rpn_labels (1, sum A H W), rpn_bbox_targets,
    rpn_bbox_inside_weights, rpn_bbox_outside_weights (1, sum 4 A H W); each level flattened
    in the memory order of its (A, H, W) or (4A, H, W) blob, levels concatenated. NaN or inf
    in gt_boxes or im_info raises rcnn.layers.finite.NonFiniteInput (the level maps give only
    their shapes)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, NAME)
        self._strides, self._anchors = pyramid_anchor_params(params, NAME)
        self._levels = len(self._strides)
        if len(bottom) != self._levels + 2:
            raise ValueError(f"{NAME}: {self._levels} levels take {self._levels + 2} bottoms "
                             f"(the level maps, gt_boxes, im_info), got {len(bottom)}")
        self._train = cfg.TRAIN
        self._allowed_border = float(params.get("allowed_border", 0))
        self._rng = np.random.default_rng(cfg.RNG_SEED)
        self._reshape_tops(top, self._shapes(bottom))

    def _shapes(self, bottom) -> list[tuple[int, int]]:
        return [tuple(bottom[i].data.shape[-2:]) for i in range(self._levels)]

    def _reshape_tops(self, top, shapes) -> None:
        n = sum(a.shape[0] * h * w for a, (h, w) in zip(self._anchors, shapes, strict=True))
        top[0].reshape(1, n)
        for i in range(1, 4):
            top[i].reshape(1, 4 * n)

    def forward(self, bottom, top):
        shapes = self._shapes(bottom)
        gt_boxes = check_finite(NAME, "gt_boxes", bottom[self._levels].data)
        im_info = check_finite(NAME, "im_info", bottom[self._levels + 1].data)[0]
        blobs = pyramid_anchor_targets(shapes, self._anchors, self._strides, gt_boxes,
                                       im_info, self._rng, self._train, self._allowed_border)
        self._reshape_tops(top, shapes)
        for i, values in enumerate(blobs):
            top[i].data[...] = values[None, :]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
