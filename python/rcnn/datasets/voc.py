"""PASCAL VOC format: Annotations/*.xml, ImageSets/Main/<set>.txt, JPEGImages/."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rcnn.datasets.imdb import Imdb, Roidb, check_boxes

VOC_CLASSES = ("__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus",
               "car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
               "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


class VOCDataset(Imdb):
    """A VOC-format folder. Classes: `classes.txt` in the folder (one name a line) if present,
    else VOC's 20."""

    def __init__(self, root: str | Path, image_set: str,
                 classes: tuple[str, ...] | None = None) -> None:
        self.root = Path(root)
        self.image_set = image_set
        self.name = f"{self.root.name}_{image_set}"
        listing = self.root / "ImageSets" / "Main" / f"{image_set}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing}: no such image set")
        self.image_index = [s.split()[0] for s in listing.read_text().splitlines() if s.strip()]
        if classes is None:
            names = self.root / "classes.txt"
            classes = (("__background__",) + tuple(names.read_text().split())
                       if names.is_file() else VOC_CLASSES)
        self.classes = tuple(classes)
        self._class_to_ind = {c: i for i, c in enumerate(self.classes)}

    def image_path_at(self, i: int) -> str:
        base = self.root / "JPEGImages" / self.image_index[i]
        for ext in (".jpg", ".png", ".jpeg"):
            if base.with_suffix(ext).is_file():
                return str(base.with_suffix(ext))
        raise FileNotFoundError(f"{base}.jpg: no such image")

    def annotation(self, index: str) -> dict:
        path = self.root / "Annotations" / f"{index}.xml"
        tree = ET.parse(path)
        size = tree.find("size")
        width, height = int(size.find("width").text), int(size.find("height").text)
        boxes, classes, difficult = [], [], []
        for obj in tree.findall("object"):
            name = obj.find("name").text.strip()
            if name not in self._class_to_ind:
                raise ValueError(f"{path}: unknown class {name!r} (classes: {self.classes[1:]})")
            bb = obj.find("bndbox")
            # VOC pixel coordinates are 1-based.
            boxes.append([float(bb.find(k).text) - 1 for k in ("xmin", "ymin", "xmax", "ymax")])
            classes.append(self._class_to_ind[name])
            d = obj.find("difficult")
            difficult.append(d is not None and int(d.text) == 1)
        boxes_a = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        check_boxes(boxes_a, width, height, str(path))
        return {"boxes": boxes_a, "gt_classes": np.asarray(classes, dtype=np.int32),
                "difficult": np.asarray(difficult, dtype=bool), "width": width,
                "height": height}

    def gt_roidb(self) -> Roidb:
        """Every image's annotation; difficult objects are kept, flagged (evaluation ignores
        them; training drops them)."""
        roidb = []
        for i, index in enumerate(self.image_index):
            entry = self.annotation(index)
            entry["image"] = self.image_path_at(i)
            entry["index"] = index
            roidb.append(entry)
        return roidb
