"""Masks as COCO run-length encoding, by pycocotools."""
from __future__ import annotations

from typing import Any

import numpy as np


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) 0 / 1 mask -> COCO compressed RLE {"size": [H, W], "counts": str}, ready for
    JSON and for COCOeval (pycocotools.mask.encode)."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
