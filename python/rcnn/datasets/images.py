"""Reading dataset images as annotation tools show them: any of JPEG / PNG, grayscale, RGBA,
palette or CMYK, turned as their EXIF orientation says, as BGR (Caffe's channel order)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from rcnn.datasets.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_ORIENTATION = 0x0112          # EXIF tag
_TRANSPOSED = (5, 6, 7, 8)     # orientations that swap width and height


def _open(path: str | Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such image") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_ORIENTATION, 1))
    except (OSError, ValueError, TypeError):
        return 1


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as shown, i.e. after the EXIF orientation; reads the header only."""
    with _open(path) as im:
        w, h = im.size
        return (h, w) if _orientation(im) in _TRANSPOSED else (w, h)


def read_image_bgr(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """H x W x 3 uint8 BGR. The EXIF orientation is applied, unless `size` (width, height,
    from the annotation) matches the stored pixels and not the turned ones: then the
    annotation was drawn on the stored pixels (LabelImg does that) and they are used as
    they are. An image whose size matches neither is an error."""
    with _open(path) as im:
        try:
            im.load()
            turned = ImageOps.exif_transpose(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise DatasetError(f"{path}: not a readable image ({e})") from None
        if size is not None and tuple(turned.size) != tuple(size):
            if tuple(im.size) != tuple(size):
                raise DatasetError(f"{path}: the image is {turned.size[0]} x {turned.size[1]}"
                                   f" but its annotation says {size[0]} x {size[1]}")
            turned = im
        return np.asarray(turned.convert("RGB"))[:, :, ::-1].copy()
