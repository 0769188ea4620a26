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
