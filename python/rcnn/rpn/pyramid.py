"""The RPN over a feature pyramid: anchor targets for all levels together, laid out the way
the FPN nets concatenate their per-level RPN outputs.

Per level l the RPN predicts scores (2A, H_l, W_l) and deltas (4A, H_l, W_l). The nets
flatten each level's blob in its memory order and concatenate the levels, finest first: the
labels are (A, H_l, W_l) per level and the regression targets and weights (4A, H_l, W_l)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rcnn.config import AttrDict
from rcnn.rpn.anchor_targets import anchor_targets
from rcnn.rpn.anchors import shifted_anchors


def all_level_anchors(shapes: Sequence[tuple[int, int]], anchors: Sequence[np.ndarray],
                      strides: Sequence[int]) -> list[np.ndarray]:
    """Each level's shifted anchors (H_l * W_l * A, 4), (y, x, anchor) order."""
    return [shifted_anchors(a, h, w, s)
            for (h, w), a, s in zip(shapes, anchors, strides, strict=True)]


def to_blob_layout(values: np.ndarray, h: int, w: int, a: int) -> np.ndarray:
    """(H * W * A, k) in (y, x, anchor) order -> the flat (k * A * H * W,) memory order of a
    (k * A, H, W) blob whose channel is anchor * k + j (scores: k = 1; deltas: k = 4)."""
    k = values.shape[1] if values.ndim == 2 else 1
    return values.reshape(h, w, a * k).transpose(2, 0, 1).ravel()


def pyramid_anchor_targets(shapes: Sequence[tuple[int, int]], anchors: Sequence[np.ndarray],
                           strides: Sequence[int], gt_boxes: np.ndarray, im_info: np.ndarray,
                           rng: np.random.Generator, train: AttrDict,
                           allowed_border: float = 0.0):
    """Anchor targets over all levels at once (one fg/bg sample of TRAIN.RPN_BATCHSIZE from
    the anchors of every level): labels (sum_l A H_l W_l,) and targets, inside and outside
    weights (sum_l 4 A H_l W_l,), each level flattened in blob order, finest first."""
    per_level = all_level_anchors(shapes, anchors, strides)
    labels, targets, inside_w, outside_w = anchor_targets(
        np.concatenate(per_level), gt_boxes, im_info, rng, train, allowed_border)
    out: list[list[np.ndarray]] = [[], [], [], []]
    start = 0
    for (h, w), a, lvl in zip(shapes, anchors, per_level, strict=True):
        end = start + lvl.shape[0]
        for j, v in enumerate((labels, targets, inside_w, outside_w)):
            out[j].append(to_blob_layout(v[start:end], h, w, a.shape[0]))
        start = end
    return tuple(np.concatenate(v) for v in out)


def split_levels(flat: np.ndarray, shapes: Sequence[tuple[int, int]],
                 channels: int) -> list[np.ndarray]:
    """The inverse of the nets' concatenation: a flat per-image vector -> one
    (channels, H_l, W_l) array per level."""
    out, start = [], 0
    for h, w in shapes:
        n = channels * h * w
        out.append(flat[start:start + n].reshape(channels, h, w))
        start += n
    if start != flat.size:
        raise ValueError(f"{flat.size} values for levels {list(shapes)} x {channels} channels")
    return out
