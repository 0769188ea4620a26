"""ProposalLayer: turns the RPN's anchor scores and deltas into RoIs."""
from __future__ import annotations

import caffe
import numpy as np

from rcnn.boxes import bbox_transform_inv, clip_boxes, nms, shifted_anchors
from rcnn.config import cfg
from rcnn.layers.anchor_target import anchor_params
from rcnn.layers.params import parse_param_str, phase_key


def propose(scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray,
            anchors: np.ndarray, stride: int, section: str) -> tuple[np.ndarray, np.ndarray]:
    """scores (A, H, W) foreground probabilities, deltas (4A, H, W) for one image ->
    proposals (R, 4) and their scores (R,), after clipping, the minimum-size filter, the
    pre-NMS top N, NMS and the post-NMS top N of cfg[section]. Never empty: when every box is
    filtered out, the best-scoring one is kept."""
    c = cfg[section]
    a, h, w = scores.shape
    all_anchors = shifted_anchors(anchors, h, w, stride)
    s = scores.transpose(1, 2, 0).reshape(-1)
    d = deltas.reshape(a, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)
    boxes = clip_boxes(bbox_transform_inv(all_anchors, d), im_info[:2])
    min_size = c.RPN_MIN_SIZE * float(im_info[2])
    ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    keep = np.where((ws >= min_size) & (hs >= min_size))[0]
    if keep.size == 0:
        keep = np.array([int(np.argmax(s))])
    boxes, s = boxes[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    if c.RPN_PRE_NMS_TOP_N > 0:
        order = order[:c.RPN_PRE_NMS_TOP_N]
    boxes, s = boxes[order], s[order]
    keep = nms(np.hstack([boxes, s[:, None]]), c.RPN_NMS_THRESH)
    if c.RPN_POST_NMS_TOP_N > 0:
        keep = keep[:c.RPN_POST_NMS_TOP_N]
    return boxes[keep], s[keep]


class ProposalLayer(caffe.Layer):
    """Bottoms: rpn_cls_prob_reshape (1, 2A, H, W), rpn_bbox_pred (1, 4A, H, W), im_info.
    Tops: rois (R, 5) of [0, x1, y1, x2, y2], and optionally their scores (R, 1)."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "ProposalLayer")
        self._stride, self._anchors = anchor_params(params)
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
                           self._stride, phase_key(self.phase))
        top[0].reshape(len(boxes), 5)
        top[0].data[...] = np.hstack([np.zeros((len(boxes), 1)), boxes])
        if len(top) > 1:
            top[1].reshape(len(boxes), 1)
            top[1].data[...] = s[:, None]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
