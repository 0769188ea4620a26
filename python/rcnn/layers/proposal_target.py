"""ProposalTargetLayer: the pycaffe layer around rcnn.roi_sampling.sample_rois."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.config import cfg
from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str
from rcnn.roi_sampling import sample_rois


class ProposalTargetLayer(caffe.Layer):
    """Bottoms: rpn_rois (R, 5), gt_boxes (G, 5). Tops: rois, labels, bbox_targets,
    bbox_inside_weights, bbox_outside_weights. NaN or inf in rpn_rois or gt_boxes raises
    rcnn.layers.finite.NonFiniteInput."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "ProposalTargetLayer")
        if "num_classes" not in params:
            raise ValueError("ProposalTargetLayer: param_str must give 'num_classes'")
        self._num_classes = int(params["num_classes"])
        self._rng = np.random.default_rng(cfg.RNG_SEED + 1)
        self._train = cfg.TRAIN
        top[0].reshape(1, 5)
        top[1].reshape(1, 1)
        for i in range(2, 5):
            top[i].reshape(1, 4 * self._num_classes)

    def forward(self, bottom, top):
        rois = check_finite("ProposalTargetLayer", "rpn_rois", bottom[0].data)
        gt = check_finite("ProposalTargetLayer", "gt_boxes", bottom[1].data)
        if gt.size and (gt[:, 4].max() >= self._num_classes or gt[:, 4].min() < 1):
            raise ValueError(f"ProposalTargetLayer: gt_boxes class labels must be in [1, "
                             f"{self._num_classes}), got {sorted(set(gt[:, 4].tolist()))}")
        blobs = sample_rois(rois, gt, self._num_classes, self._rng, self._train)
        # rois (N, 5), labels (N,), targets and weights (N, 4 * num_classes)
        for i in range(min(len(top), len(blobs))):
            top[i].reshape(*blobs[i].shape)
            top[i].data[...] = blobs[i]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
