"""Reading dataset images as annotation tools show them: JPEG / PNG (or any file Pillow
opens) of any pixel mode, turned as their EXIF orientation says, as 8-bit BGR (Caffe's
channel order).

Pixel modes, to 8 bits per channel (`rgb8`):
- L, P, RGB, RGBX, YCbCr, HSV, CMYK: Pillow's conversion to RGB (CMYK without a colour
  profile); LA, PA, RGBA, RGBa: the same, the alpha channel dropped (the stored colours, not
  composited on a background).
- 1 (1-bit): 0 -> 0, 1 -> 255.
- 16-bit grey (I;16, I;16L, I;16B, I;16N): v >> 8, i.e. v // 256, the high byte, as OpenCV's
  IMREAD_COLOR (and so mmdetection's loader) reads 16-bit images: 10000 -> 39, 40000 -> 156,
  65535 -> 255. 16-bit RGB, RGBA and grey + alpha PNGs / TIFFs, which Pillow itself opens as
  8-bit RGB / RGBA with the high byte, follow the same rule.
- I (32-bit integer): values from 0 to 65535 are 16-bit values (v >> 8, as above); an image
  with values outside that range is refused.
- F (32-bit float): values from 0 to 1 are scaled, round(255 v); an image with values outside
  [0, 1] (or NaN) is refused.
- Any other mode (LAB, ...): refused.
A refusal is a DatasetError, one line naming the file, the mode and the rule.

EXIF orientation: applied, unless the annotation's size (width, height) fits the stored pixels
and not the turned ones (the annotation was drawn on the stored pixels, as LabelImg does).
Where the size cannot decide (a square image, a flip or a 180-degree turn, or no size in the
annotation) the orientation is applied with a warning naming the file, once per file
(`check_orientation`, which the dataset readers call when they build the roidb).
"""
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
# What ImageOps.exif_transpose does for each orientation (for masks drawn on stored pixels).
ORIENTATION_METHODS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                       4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                       6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                       8: Image.Transpose.ROTATE_90}
# Modes Pillow converts to RGB by itself (alpha dropped).
_PILLOW_RGB = ("L", "P", "RGB", "RGBX", "YCbCr", "HSV", "CMYK", "LA", "PA", "RGBA", "RGBa")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")

_warned: set[str] = set()      # files warned about (the orientation warning is given once)


def _open(path: str | Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such image") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION, 1))
    except (OSError, ValueError, TypeError):
        return 1
    return value if value in ORIENTATION_METHODS else 1


def _turned(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in _TRANSPOSED else (size[0], size[1])


def image_header(path: str | Path) -> tuple[tuple[int, int], int]:
    """((width, height) of the stored pixels, EXIF orientation 1-8); reads the header only."""
    with _open(path) as im:
        return (int(im.size[0]), int(im.size[1])), _orientation(im)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as shown, i.e. after the EXIF orientation; reads the header only."""
    stored, orientation = image_header(path)
    return _turned(stored, orientation)


def orientation_applied(stored: tuple[int, int], orientation: int,
                        size: tuple[int, int] | None) -> bool:
    """Whether read_image_bgr turns an image of these stored (width, height) and EXIF
    orientation, given the annotation's size (None: no annotation): yes unless the size fits
    the stored pixels and not the turned ones. False for orientation 1."""
    if orientation == 1:
        return False
    if size is None:
        return True
    size = (int(size[0]), int(size[1]))
    return not (size == tuple(stored) and size != _turned(stored, orientation))


def _warn_once(path: str | Path, message: str) -> None:
    key = str(path)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


def _warn_if_undecided(path: str | Path, stored: tuple[int, int], orientation: int,
                       size: tuple[int, int] | None) -> None:
    if size is None:
        _warn_once(path, f"{path}: EXIF orientation {orientation} applied; the annotation has "
                         "no size to tell whether it was drawn on the stored pixels instead")
    elif tuple(stored) == (int(size[0]), int(size[1])):
        _warn_once(path, f"{path}: EXIF orientation {orientation} applied, but the "
                         f"annotation's size {size[0]} x {size[1]} fits the stored pixels too "
                         "(a square image, a flip or a half turn): if it was drawn on the "
                         "stored pixels, remove the image's EXIF orientation")


def check_orientation(path: str | Path, size: tuple[int, int] | None) -> int:
    """The dataset readers' check of an image against its annotation's size (None when the
    annotation gives none): a warning naming the file (once) when the EXIF orientation will be
    applied but the size cannot tell whether the annotation was drawn on the stored pixels
    instead. Returns the orientation that read_image_bgr applies (1: none)."""
    stored, orientation = image_header(path)
    if not orientation_applied(stored, orientation, size):
        return 1
    _warn_if_undecided(path, stored, orientation, size)
    return orientation


def _refuse(path: str | Path, what: str) -> DatasetError:
    return DatasetError(f"{path}: {what}; save it as 8-bit (or 16-bit) grey or colour")


def rgb8(im: Image.Image, path: str | Path = "image") -> np.ndarray:
    """H x W x 3 uint8 RGB of a Pillow image of any mode, by the rules in this module's
    docstring; a DatasetError naming `path` for a mode or values without a rule."""
    mode = im.mode
    if mode in _PILLOW_RGB:
        return np.asarray(im.convert("RGB"))
    if mode == "1":
        grey = np.asarray(im, dtype=np.uint8) * np.uint8(255)
    elif mode in _SIXTEEN_BIT:
        grey = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
    elif mode == "I":
        values = np.asarray(im, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise _refuse(path, f"32-bit integer pixels (mode I) from {values.min()} to "
                                f"{values.max()}: only values 0-65535 are read (as 16-bit, "
                                "v // 256)")
        grey = (values >> 8).astype(np.uint8)
    elif mode == "F":
        values = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(values)
        if values.size and not (finite.all() and values.min() >= 0 and values.max() <= 1):
            found = (f"from {values[finite].min():g} to {values[finite].max():g}"
                     if finite.all() else f"with {int((~finite).sum())} NaN or infinite values")
            raise _refuse(path, f"float pixels (mode F) {found}: only values in [0, 1] are "
                                "read (as round(255 v))")
        grey = np.rint(values * 255).astype(np.uint8)
    else:
        raise _refuse(path, f"pixel mode {mode} has no conversion to 8-bit colour here")
    return np.repeat(grey[:, :, None], 3, axis=2)


def read_image_bgr(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """H x W x 3 uint8 BGR. The EXIF orientation is applied, unless `size` (width, height,
    from the annotation) matches the stored pixels and not the turned ones: then the
    annotation was drawn on the stored pixels (LabelImg does that) and they are used as
    they are. An image whose size matches neither is an error. Pixel modes as `rgb8` says."""
    with _open(path) as im:
        try:
            im.load()
            orientation = _orientation(im)
            apply = orientation_applied(im.size, orientation, size)
            turned = ImageOps.exif_transpose(im) if apply else im
        except (OSError, ValueError, SyntaxError) as e:
            raise DatasetError(f"{path}: not a readable image ({e})") from None
        if size is not None and tuple(turned.size) != (int(size[0]), int(size[1])):
            shown = _turned(im.size, orientation)
            raise DatasetError(f"{path}: the image is {shown[0]} x {shown[1]}"
                               f" but its annotation says {size[0]} x {size[1]}")
        if apply and size is not None:
            _warn_if_undecided(path, im.size, orientation, size)
        return rgb8(turned, path)[:, :, ::-1].copy()
