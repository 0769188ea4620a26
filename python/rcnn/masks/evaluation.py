"""Mask detections in COCO's result format, for pycocotools' COCOeval (iouType "segm")."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def segm_results(boxes: Sequence[Sequence[np.ndarray]],
                 masks: Sequence[Sequence[Sequence[dict[str, Any] | None]]],
                 image_ids: Sequence[int], category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """boxes[c][i]: (K, 5) detections of class c in image i (the score is column 4);
    masks[c][i]: their K masks as COCO RLE, None for a detection that was not segmented
    (left out). Class c is category_ids[c - 1] and image i is image_ids[i]. Returns COCO
    segm results: image_id, category_id, segmentation, score. Raises ValueError when the
    masks do not align with the detections."""
    out = []
    for c, cid in enumerate(category_ids, start=1):
        for i, image_id in enumerate(image_ids):
            dets = np.asarray(boxes[c][i]).reshape(-1, 5)
            if len(masks[c][i]) != dets.shape[0]:
                raise ValueError(f"segm results: class {c}, image {image_id}: "
                                 f"{dets.shape[0]} detections but {len(masks[c][i])} masks")
            for d, rle in zip(dets, masks[c][i], strict=True):
                if rle is None:
                    continue
                out.append({"image_id": int(image_id), "category_id": int(cid),
                            "segmentation": rle, "score": float(d[4])})
    return out
