"""Images to network input blobs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def load_image_bgr(path: str) -> np.ndarray:
    """H x W x 3 uint8, BGR channel order (Caffe's convention)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))[:, :, ::-1].copy()


def prep_image(im: np.ndarray, pixel_means: np.ndarray, target_size: int,
               max_size: int) -> tuple[np.ndarray, float]:
    """Resizes so the shorter side is target_size (the longer at most max_size) and subtracts
    the pixel means. Returns float32 H x W x 3 and the scale applied."""
    h, w = im.shape[:2]
    scale = float(target_size) / min(h, w)
    if round(scale * max(h, w)) > max_size:
        scale = float(max_size) / max(h, w)
    if abs(scale - 1.0) > 1e-6:
        size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
        im = np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR))
    return im.astype(np.float32) - pixel_means.reshape(1, 1, 3), scale


def images_to_blob(ims: Sequence[np.ndarray]) -> np.ndarray:
    """N x 3 x H x W float32, zero-padded to the largest image."""
    h = max(im.shape[0] for im in ims)
    w = max(im.shape[1] for im in ims)
    blob = np.zeros((len(ims), 3, h, w), dtype=np.float32)
    for i, im in enumerate(ims):
        blob[i, :, :im.shape[0], :im.shape[1]] = im.transpose(2, 0, 1)
    return blob
