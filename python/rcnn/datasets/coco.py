"""COCO-format datasets (one JSON file per split, read with pycocotools): images found
relative to the JSON's folder or under an image root; categories mapped to contiguous classes
1..K in the order of their ids (a category named like '_background_' is skipped); crowd
(`iscrowd`) and `ignore` boxes flagged, so that training leaves them out and evaluation
treats them as COCO does. Instance masks: each annotation's `segmentation` (polygons,
uncompressed or compressed RLE) is kept as it is in the roidb's "segms" (checked, decoded per
minibatch: rcnn.datasets.masks). `coco_ground_truth` turns any roidb into a COCO dataset in
memory (with RLE segmentations where there are masks) and `write_coco` writes any imdb as a
COCO JSON."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from rcnn.datasets.classes import is_background
from rcnn.datasets.errors import DatasetError
from rcnn.datasets.images import check_orientation, image_size
from rcnn.datasets.imdb import Imdb, Roidb
from rcnn.datasets.masks import coco_segm, encode_rle, has_masks, instance_masks, rle_area
from rcnn.datasets.voc import clip_boxes_to_image

log = logging.getLogger(__name__)


def quietly(fn, *args, **kwargs):
    """Calls a pycocotools function, its print()s sent to the debug log."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args, **kwargs)
    for line in out.getvalue().splitlines():
        log.debug("pycocotools: %s", line)
    return result


def load_json(path: Path) -> dict[str, Any]:
    """A COCO annotation file's content, or a DatasetError naming it and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column "
                           f"{e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: not a COCO annotation file (the top level is not an "
                           "object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: not a COCO annotation file (no {key!r} list)")
    return data


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    for key, fields in (("images", ("id", "file_name")), ("categories", ("id", "name")),
                        ("annotations", ("id", "image_id", "category_id", "bbox"))):
        for k, item in enumerate(data[key]):
            missing = [f for f in fields if not isinstance(item, dict) or f not in item]
            if missing:
                raise DatasetError(f"{path}: {key}[{k}] has no {', '.join(missing)}")
    for k, ann in enumerate(data["annotations"]):
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, int | float) for v in bbox)):
            raise DatasetError(f"{path}: annotations[{k}] (id {ann['id']}) has bbox {bbox!r}, "
                               "not [x, y, width, height]")


class COCODataset(Imdb):
    """A COCO-format JSON file. `image_root`: where file_name is relative to (default: the
    JSON's folder)."""

    def __init__(self, json_path: str | Path, image_root: str | Path | None = None) -> None:
        from pycocotools.coco import COCO

        self.json_path = Path(json_path)
        data = load_json(self.json_path)
        _check_fields(self.json_path, data)
        self.coco = COCO()
        self.coco.dataset = data
        quietly(self.coco.createIndex)
        self.image_root = Path(image_root) if image_root else self.json_path.parent
        self.name = self.json_path.stem
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        kept = [c for c in cats if not is_background(str(c["name"]))]
        for c in cats:
            if c not in kept:
                log.info("%s: category %r (id %s) is background: skipped", self.json_path,
                         c["name"], c["id"])
        self.category_ids = [c["id"] for c in kept]   # class i is category_ids[i - 1]
        self.classes = ("__background__", *(str(c["name"]) for c in kept))
        self._class_of = {cid: i + 1 for i, cid in enumerate(self.category_ids)}
        self._background_ids = {c["id"] for c in cats} - set(self.category_ids)
        self.image_ids = sorted(self.coco.getImgIds())
        self.image_index = [str(self.coco.imgs[i]["file_name"]) for i in self.image_ids]
        # a dataset with masks: some annotation has a segmentation
        self.has_masks = any(ann.get("segmentation") for ann in data["annotations"]
                             if isinstance(ann, dict))

    def image_path_at(self, i: int) -> str:
        return str(self.image_root / self.image_index[i])

    def _entry(self, image_id: int, path: Path) -> dict[str, Any]:
        info = self.coco.imgs[image_id]
        width, height = int(info.get("width") or 0), int(info.get("height") or 0)
        shown = image_size(path)      # reads the header: an unreadable image fails here
        sized = width > 0 and height > 0
        if not sized:
            width, height = shown
        check_orientation(path, (width, height) if sized else None)
        where = f"{self.json_path} (image {image_id}, {info['file_name']})"
        boxes, classes, crowd, segms, ids = [], [], [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            cid = ann["category_id"]
            if cid in self._background_ids:
                continue
            if cid not in self._class_of:
                raise DatasetError(f"{self.json_path}: annotation {ann['id']} has category_id "
                                   f"{cid}, which is not among the categories")
            x, y, w, h = (float(v) for v in ann["bbox"])
            # COCO boxes are [x, y, width, height] in continuous coordinates; ours are
            # inclusive pixel boxes (as py-faster-rcnn's COCO reader).
            boxes.append([x, y, x + max(w - 1, 0), y + max(h - 1, 0)])
            classes.append(self._class_of[cid])
            crowd.append(bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0)))
            ids.append(ann["id"])
            if self.has_masks:
                segms.append(coco_segm(ann.get("segmentation"), height, width,
                                       f"{where}: annotation {ann['id']}"))
        boxes_a, keep = clip_boxes_to_image(np.asarray(boxes, np.float32).reshape(-1, 4),
                                            width, height, where)
        crowd_a = np.asarray(crowd, dtype=bool).reshape(-1)[keep]
        entry = {"boxes": boxes_a[keep], "gt_classes": np.asarray(classes, np.int32)[keep],
                 "difficult": crowd_a.copy(), "crowd": crowd_a, "width": width,
                 "height": height, "image": str(path), "index": str(info["file_name"]),
                 "id": image_id, "source": where,
                 "object_ids": np.asarray(ids, dtype=np.int64).reshape(-1)[keep]}
        if self.has_masks:
            entry["segms"] = [sg for sg, k in zip(segms, keep, strict=True) if k]
        return entry

    def gt_roidb(self) -> Roidb:
        """Every image with its boxes; crowd boxes are flagged difficult (training leaves them
        out; our evaluation ignores detections on them; COCOeval handles them itself)."""
        roidb = []
        for image_id, name in zip(self.image_ids, self.image_index, strict=True):
            path = self.image_root / name
            if not path.is_file():
                raise DatasetError(f"{self.json_path}: image {image_id}: no file {path}"
                                   + ("" if self.image_root != self.json_path.parent else
                                      " (use --image-root to say where the images are)"))
            roidb.append(self._entry(image_id, path))
        if self.has_masks:
            unmasked = sum(1 for e in roidb for sg in e["segms"] if sg is None)
            if unmasked:
                log.info("%s: %d of %d objects have no mask", self.json_path, unmasked,
                         sum(len(e["segms"]) for e in roidb))
        return roidb


def coco_ground_truth(roidb: Roidb, classes: tuple[str, ...] | list[str],
                      area: str = "box") -> dict[str, Any]:
    """A roidb's ground truth as a COCO dataset dict in memory (pycocotools' COCO.dataset):
    images with id = entry["id"] where the entry has one, else its roidb index + 1;
    categories 1..K = classes[1:]; annotations with bbox [x, y, w, h] (from the inclusive
    boxes: w = x2 - x1 + 1), iscrowd (difficult and crowd objects), area, and, when some
    entry has masks, "segmentation" as compressed RLE (counts str) of the decoded masks.
    In a roidb with masks, an object without one gets its box as its segmentation and
    iscrowd 1: a region COCOeval ignores rather than a miss (COCOeval's segm evaluation
    needs a segmentation for every annotation). area: "box" (w * h, what our evaluation's
    size ranges use, the default) or "mask" (the mask's pixels where it has one, COCO's
    convention)."""
    if area not in ("box", "mask"):
        raise ValueError(f"coco_ground_truth: area is {area!r}, not 'box' or 'mask'")
    with_masks = any(has_masks(e) for e in roidb)
    images, annotations = [], []
    for i, e in enumerate(roidb):
        image_id = int(e["id"]) if "id" in e else i + 1
        images.append({"id": image_id, "width": int(e["width"]), "height": int(e["height"]),
                       "file_name": str(e.get("image", e.get("index", image_id)))})
        masks = instance_masks(e) if with_masks and has_masks(e) else None
        segms = e.get("segms") or [None] * len(e["boxes"])
        difficult = e.get("difficult", np.zeros(len(e["boxes"]), bool))
        for k, (box, cls, diff) in enumerate(zip(e["boxes"], e["gt_classes"], difficult,
                                                 strict=True)):
            x1, y1, x2, y2 = (float(v) for v in box[:4])
            w, h = x2 - x1 + 1, y2 - y1 + 1
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls),
                   "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": int(bool(diff))}
            if with_masks:
                if masks is not None and segms[k] is not None:
                    rle = encode_rle(masks[k])
                    if area == "mask":
                        ann["area"] = float(rle_area(rle))
                else:      # no mask: its box, a crowd region
                    box_mask = np.zeros((int(e["height"]), int(e["width"])), np.uint8)
                    box_mask[int(np.floor(y1)):int(np.ceil(y2)) + 1,
                             int(np.floor(x1)):int(np.ceil(x2)) + 1] = 1
                    rle = encode_rle(box_mask)
                    ann["iscrowd"] = 1
                ann["segmentation"] = rle
            annotations.append(ann)
    categories = [{"id": i, "name": name, "supercategory": "object"}
                  for i, name in enumerate(classes) if i > 0]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(imdb: Imdb, path: str | Path) -> Path:
    """The imdb's images and ground truth as a COCO JSON file (coco_ground_truth's), file
    names relative to its folder; difficult objects become crowd regions; with instance
    masks, each annotation has its mask as compressed RLE."""
    path = Path(path)
    data = coco_ground_truth(imdb.gt_roidb(), imdb.classes)
    for image in data["images"]:
        image["file_name"] = os.path.relpath(image["file_name"], path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
