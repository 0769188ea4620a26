"""The imdb/roidb interface: an image database lists images and their ground truth; a roidb
is one dict per image (image path, size, boxes, classes, difficult flags, flipped, and for
datasets with instance masks "segms": one lazy mask description per object, see
rcnn.datasets.masks). The per-object keys (OBJECT_KEYS) stay aligned with the boxes through
flipped(), without_difficult() and filter_roidb(); segms are not flipped themselves (masks
are flipped when decoded, by the entry's "flipped" flag)."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Roidb = list[dict[str, Any]]

# Entry keys with one item per object (aligned with "boxes"): the classes, flags, the mask
# descriptions and the objects' ids in their annotation file (COCO annotation ids, VOC object
# numbers).
OBJECT_KEYS = ("boxes", "gt_classes", "difficult", "crowd", "segms", "object_ids")


def select_objects(entry: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """A copy of the entry with only the objects `keep` (a boolean mask or indices) in every
    per-object key it has."""
    keep = np.asarray(keep)
    idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
    out = dict(entry)
    for key in OBJECT_KEYS:
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            out[key] = value[idx]
        else:
            out[key] = [value[i] for i in idx]
    return out


class Imdb:
    """Base class: subclasses set name, classes (index 0 is '__background__'), image_index
    and implement image_path_at() and gt_roidb()."""

    name: str = "imdb"
    classes: tuple[str, ...] = ("__background__",)
    image_index: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_images(self) -> int:
        return len(self.image_index)

    def image_path_at(self, i: int) -> str:
        raise NotImplementedError

    def gt_roidb(self) -> Roidb:
        raise NotImplementedError


def flipped(roidb: Roidb) -> Roidb:
    """Horizontally flipped copies of every entry (training augmentation). Their "segms" are
    the originals' (the same descriptions, in the same order): masks are flipped when
    decoded (rcnn.datasets.masks.instance_masks reads the "flipped" flag)."""
    out = []
    for e in roidb:
        boxes = e["boxes"].copy()
        boxes[:, 0] = e["width"] - e["boxes"][:, 2] - 1
        boxes[:, 2] = e["width"] - e["boxes"][:, 0] - 1
        out.append({**e, "boxes": boxes, "flipped": True})
    return out


def training_roidb(imdb: Imdb, use_flipped: bool) -> Roidb:
    roidb = [dict(e, flipped=False) for e in imdb.gt_roidb()]
    return roidb + flipped(roidb) if use_flipped else roidb


def filter_roidb(roidb: Roidb) -> Roidb:
    """Drops images without any non-difficult object."""
    return [e for e in roidb if (e["gt_classes"] > 0).any()]


def without_difficult(roidb: Roidb) -> Roidb:
    """The entries without their difficult (and crowd) objects, every per-object key
    (OBJECT_KEYS) kept aligned."""
    return [select_objects(e, ~np.asarray(e["difficult"], dtype=bool)) for e in roidb]


def train_roidb(imdb: Imdb, use_flipped: bool) -> Roidb:
    """What training reads: every image (and, with use_flipped, its mirror image) with its
    non-difficult objects, images without any left out."""
    roidb = filter_roidb(without_difficult(training_roidb(imdb, use_flipped)))
    log.info("%s: %d training entries (%s flipped copies)", imdb.name, len(roidb),
             "with" if use_flipped else "without")
    return roidb


def check_boxes(boxes: np.ndarray, width: int, height: int, where: str) -> None:
    bad = ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]) | (boxes[:, 0] < 0)
           | (boxes[:, 1] < 0) | (boxes[:, 2] >= width) | (boxes[:, 3] >= height))
    if bad.any():
        raise ValueError(f"{where}: box {boxes[np.argmax(bad)].tolist()} is empty or outside "
                         f"the {width} x {height} image")
