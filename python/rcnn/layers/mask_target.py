"""MaskTargetLayer: the pycaffe layer around rcnn.masks.targets.foreground_mask_targets."""
from __future__ import annotations

import caffe

from rcnn.layers.finite import check_finite
from rcnn.layers.params import parse_param_str
from rcnn.masks.targets import foreground_mask_targets


class MaskTargetLayer(caffe.Layer):
    """Mask R-CNN's mask targets for the foreground RoIs of the detection head's sample.

    Bottoms: rois (R, 5) and labels (R,) from ProposalTargetLayer, gt_boxes (G, 5) and
    gt_masks (G, H, W) from RoIDataLayer (masks of the original image, 0 / 1, or all -1 for
    an object without a mask), im_info (1, 3) [height, width, scale]. Tops: mask_rois (F, 5)
    (the foreground RoIs; F may be 0) and mask_targets (F, num_classes, mask_size,
    mask_size): 0 / 1 in the RoI's class channel, -1 (ignored by the loss) elsewhere.
    param_str: num_classes (with background), mask_size (M, default 28)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "MaskTargetLayer")
        if "num_classes" not in params:
            raise ValueError("MaskTargetLayer: param_str must give 'num_classes'")
        self._num_classes = int(params["num_classes"])
        self._size = int(params.get("mask_size", 28))
        if self._size < 1:
            raise ValueError(f"MaskTargetLayer: mask_size must be >= 1, got {self._size}")
        if len(bottom) != 5 or len(top) != 2:
            raise ValueError("MaskTargetLayer: bottoms rois, labels, gt_boxes, gt_masks, "
                             f"im_info and tops mask_rois, mask_targets; got {len(bottom)} "
                             f"bottoms, {len(top)} tops")
        top[0].reshape(1, 5)
        top[1].reshape(1, self._num_classes, self._size, self._size)

    def forward(self, bottom, top):
        rois, labels, gt_boxes, im_info = (
            check_finite("MaskTargetLayer", name, bottom[i].data)
            for i, name in ((0, "rois"), (1, "labels"), (2, "gt_boxes"), (4, "im_info")))
        gt_masks = bottom[3].data   # 0 / 1 / -1 from RoIDataLayer: nothing to check
        mask_rois, targets = foreground_mask_targets(
            rois.reshape(-1, 5), labels.ravel(), gt_boxes.reshape(-1, 5),
            gt_masks.reshape(-1, *gt_masks.shape[-2:]), float(im_info[0, 2]),
            self._num_classes, self._size)
        top[0].reshape(*mask_rois.shape)
        top[0].data[...] = mask_rois
        top[1].reshape(*targets.shape)
        top[1].data[...] = targets

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
