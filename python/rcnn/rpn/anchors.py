"""Anchors: the reference boxes of the region proposal network, and all their shifted copies
over a feature map."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rcnn.boxes import from_sizes_and_centres, sizes_and_centres
from rcnn.config import AttrDict


def generate_anchors(base_size: int = 16, ratios: Sequence[float] = (0.5, 1, 2),
                     scales: Sequence[float] = (8, 16, 32)) -> np.ndarray:
    """(len(ratios) * len(scales), 4) anchors centred on the base_size x base_size cell at
    the origin: for each aspect ratio h/w, a box of the cell's area (sides rounded), then
    scaled; ratio-major order, as Faster R-CNN's trained models expect."""
    base = np.array([0, 0, base_size - 1, base_size - 1], dtype=np.float64)
    w, h, cx, cy = sizes_and_centres(base)
    ratios = np.asarray(ratios, dtype=np.float64)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    scales = np.asarray(scales, dtype=np.float64)
    ws = (ws[:, None] * scales[None, :]).ravel()
    hs = (hs[:, None] * scales[None, :]).ravel()
    return from_sizes_and_centres(ws, hs, np.full_like(ws, cx), np.full_like(hs, cy))


def shifted_anchors(anchors: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """All anchors over a height x width feature map: (height * width * A, 4), ordered
    (y, x, anchor) to match the (A, H, W)-transposed layout of the RPN outputs."""
    sx, sy = np.meshgrid(np.arange(width) * stride, np.arange(height) * stride)
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    return (shifts[:, None, :] + anchors[None, :, :]).reshape(-1, 4)


def anchor_params(params: Mapping[str, Any], model: AttrDict) -> tuple[int, np.ndarray]:
    """The feature stride and base anchors of an RPN Python layer: its param_str keys
    (feat_stride, scales, ratios, as py-faster-rcnn's prototxts write them) over the config's
    MODEL section."""
    stride = int(params.get("feat_stride", model.FEAT_STRIDE))
    anchors = generate_anchors(16, params.get("ratios", model.ANCHOR_RATIOS),
                               params.get("scales", model.ANCHOR_SCALES))
    return stride, anchors


def level_anchors(strides: Sequence[int], sizes: Sequence[float],
                  ratios: Sequence[float] = (0.5, 1, 2)) -> list[np.ndarray]:
    """Base anchors of each level of a feature pyramid, one size per level (FPN): level l's
    anchors are centred on its stride x stride cell, of area sizes[l]^2, one per ratio."""
    if len(strides) != len(sizes):
        raise ValueError(f"one anchor size per level: {len(strides)} strides, "
                         f"{len(sizes)} sizes")
    return [generate_anchors(int(s), ratios, (float(size) / int(s),))
            for s, size in zip(strides, sizes, strict=True)]
