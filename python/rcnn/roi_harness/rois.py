"""Random RoIs for tests and benchmarks: proposal-like boxes plus the awkward cases."""
from __future__ import annotations

import numpy as np


def proposal_like_rois(rng: np.random.Generator, n: int, num_images: int, img_h: float,
                       img_w: float) -> np.ndarray:
    """(n, 5) boxes [b, x1, y1, x2, y2] of RPN-proposal-like sizes (16 px to the image side,
    log-uniform; aspect 1:3 to 3:1), clipped to the image."""
    side = np.exp(rng.uniform(np.log(16), np.log(max(img_h, img_w)), n))
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3), n))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx, cy = rng.uniform(0, img_w, n), rng.uniform(0, img_h, n)
    x1 = np.clip(cx - w / 2, 0, img_w - 1)
    y1 = np.clip(cy - h / 2, 0, img_h - 1)
    x2 = np.clip(cx + w / 2, 0, img_w - 1)
    y2 = np.clip(cy + h / 2, 0, img_h - 1)
    b = rng.integers(0, num_images, n)
    return np.stack([b, x1, y1, x2, y2], axis=1).astype(np.float32)


def awkward_rois(rng: np.random.Generator, n: int, num_images: int, img_h: float,
                 img_w: float) -> np.ndarray:
    """(n, 5) boxes cycling through: ordinary, tiny (< 1 px), huge (beyond the image),
    degenerate (x2 < x1 or y2 < y1), fully outside, partly outside."""
    rows = []
    for i in range(n):
        kind = i % 6
        x1, y1 = rng.uniform(0, img_w), rng.uniform(0, img_h)
        if kind == 0:
            w, h = rng.uniform(4, img_w / 2), rng.uniform(4, img_h / 2)
        elif kind == 1:
            w, h = rng.uniform(0, 1), rng.uniform(0, 1)
        elif kind == 2:
            x1, y1 = rng.uniform(-img_w, 0), rng.uniform(-img_h, 0)
            w, h = rng.uniform(2 * img_w, 3 * img_w), rng.uniform(2 * img_h, 3 * img_h)
        elif kind == 3:
            w, h = -rng.uniform(0, img_w / 4), rng.uniform(-img_h / 4, img_h / 4)
        elif kind == 4:
            x1, y1 = img_w + rng.uniform(2, img_w), rng.uniform(-2 * img_h, img_h)
            w, h = rng.uniform(1, img_w), rng.uniform(1, img_h)
        else:
            x1, y1 = rng.uniform(-img_w / 2, 0), rng.uniform(img_h / 2, img_h)
            w, h = rng.uniform(img_w / 4, img_w), rng.uniform(img_h / 4, img_h)
        rows.append([rng.integers(0, num_images), x1, y1, x1 + w, y1 + h])
    return np.asarray(rows, dtype=np.float32)


def fpn_levels(rois: np.ndarray, num_levels: int, first_level: int = 2,
               canonical_size: float = 224, canonical_level: int = 4) -> np.ndarray:
    """(R,) index into a pyramid of num_levels maps (finest first, the first at FPN level
    first_level) for each RoI, by detectron2's rule (PyramidROIAlign's level_rule FLOOR):
    floor(canonical_level + log2(sqrt(w*h) / canonical_size + 1e-6)), w = x2 - x1, clamped to
    the levels present; a NaN level goes to the finest."""
    r = rois.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.sqrt((r[:, 3] - r[:, 1]) * (r[:, 4] - r[:, 2]))
        level = np.floor(canonical_level + np.log2(size / canonical_size + 1e-6)) - first_level
    level = np.where(np.isnan(level), 0, level)
    return np.clip(level, 0, num_levels - 1).astype(np.int64)
