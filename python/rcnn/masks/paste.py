"""Pasting predicted masks into the image: each detection's M x M mask probabilities
resampled (bilinear) onto the image pixels its box covers, then thresholded.

The inverse of rcnn.masks.targets' resampling, as Detectron2's `paste_masks_in_image`
(grid_sample, align_corners=False, zero padding): the image pixel whose centre is at x + 0.5
samples the mask at u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5 in the mask's pixel-index
coordinates, where [x1, x2) is the box's continuous extent (an inclusive pixel box [x1, x2]
covers [x1, x2 + 1)); outside the mask the probability falls off bilinearly to 0.
"""
from __future__ import annotations

import numpy as np

from rcnn.masks.targets import continuous_boxes


def _interpolation(u: np.ndarray, size: int) -> np.ndarray:
    """(len(u), size): row k holds the bilinear weights of position u[k] (pixel-index
    coordinates of a 0..size-1 grid) on its two neighbours, zero padding outside the grid."""
    lo = np.floor(u).astype(np.int64)
    frac = u - lo
    w = np.zeros((u.size, size))
    rows = np.arange(u.size)
    inside = (lo >= 0) & (lo < size)
    w[rows[inside], lo[inside]] = 1.0 - frac[inside]
    inside = (lo + 1 >= 0) & (lo + 1 < size)
    w[rows[inside], lo[inside] + 1] = frac[inside]
    return w


def paste_mask(prob: np.ndarray, box: np.ndarray, height: int, width: int,
               threshold: float = 0.5) -> np.ndarray:
    """(height, width) uint8 0/1: the (M, M) probabilities `prob` of one detection pasted at
    its inclusive pixel box [x1, y1, x2, y2] (image coordinates) and thresholded (>= threshold).
    Pixels outside the box's extent are 0; a box outside the image gives an empty mask.
    Bilinear resampling is separable: rows, then columns (two small matrix products)."""
    out = np.zeros((height, width), dtype=np.uint8)
    mh, mw = prob.shape
    x1, y1, x2, y2 = continuous_boxes(np.asarray(box, np.float64).reshape(1, 4))[0]
    if not (x2 > x1 and y2 > y1):
        return out
    # the image pixels the box touches (samples just outside it are 0 by zero padding)
    c0, c1 = max(int(np.floor(x1)), 0), min(int(np.ceil(x2)), width)
    r0, r1 = max(int(np.floor(y1)), 0), min(int(np.ceil(y2)), height)
    if c0 >= c1 or r0 >= r1:
        return out
    u = (np.arange(c0, c1) + 0.5 - x1) / (x2 - x1) * mw - 0.5
    v = (np.arange(r0, r1) + 0.5 - y1) / (y2 - y1) * mh - 0.5
    val = _interpolation(v, mh) @ prob.astype(np.float64) @ _interpolation(u, mw).T
    out[r0:r1, c0:c1] = val >= threshold
    return out
