"""PASCAL VOC format, as VOC and annotation tools (labelme2voc, LabelImg, CVAT, Roboflow)
write it: Annotations/*.xml (or the XML files in the folder itself), JPEGImages/ (or the
images beside the XML files), ImageSets/Main/<set>.txt (optional: without it every annotation
is used), and the class names in a file of the folder's (classes.txt, labelme's
class_names.txt, CVAT's labelmap.txt, LabelImg's predefined_classes.txt) or VOC's 20.

Tolerated: empty or missing <difficult>/<truncated>, float coordinates, a missing <size> (read
from the image), boxes touching or crossing the border (clipped, with a warning naming the
file), images without objects, .jpg/.jpeg/.png in any case."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rcnn.datasets.classes import VOC_CLASSES, find_class_file, read_class_file
from rcnn.datasets.errors import DatasetError
from rcnn.datasets.images import IMAGE_SUFFIXES, image_size
from rcnn.datasets.imdb import Imdb, Roidb

log = logging.getLogger(__name__)

__all__ = ["VOC_CLASSES", "VOCDataset", "clip_boxes_to_image"]


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    text = None if child is None or child.text is None else child.text.strip()
    return text or None


def _flag(el: ET.Element, tag: str) -> bool:
    """<difficult>1</difficult>, 'true', ...; empty or missing is false."""
    text = _text(el, tag)
    if text is None:
        return False
    try:
        return float(text) != 0
    except ValueError:
        return text.lower() in ("true", "yes")


def _number(el: ET.Element, tag: str, where: str) -> float:
    text = _text(el, tag)
    if text is None:
        raise DatasetError(f"{where}: no <{tag}>")
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is {text!r}, not a number") from None


def clip_boxes_to_image(boxes: np.ndarray, width: int, height: int,
                        where: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (0-based, inclusive) clipped to the image, with a warning naming `where` for
    each box changed; and which boxes are kept (those not empty after clipping)."""
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0, width - 1)
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0, height - 1)
    keep = ((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1]) & (boxes[:, 2] >= 0)
            & (boxes[:, 3] >= 0) & (boxes[:, 0] <= width - 1) & (boxes[:, 1] <= height - 1))
    for i in np.where((clipped != boxes).any(axis=1) | ~keep)[0]:
        box = [round(float(v), 2) for v in boxes[i]]
        if keep[i]:
            log.warning("%s: box %s crosses the border of the %d x %d image: clipped to %s",
                        where, box, width, height, [round(float(v), 2) for v in clipped[i]])
        else:
            log.warning("%s: box %s is empty or outside the %d x %d image: left out", where,
                        box, width, height)
    return clipped, keep


class VOCDataset(Imdb):
    """A VOC-format folder restricted to an image set: the name of a list in ImageSets/Main/,
    or the path of a list file (one image name a line). Without ImageSets/Main/, every
    annotation."""

    def __init__(self, root: str | Path, image_set: str,
                 classes: tuple[str, ...] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder")
        self.annotations = self.root / "Annotations"
        if not self.annotations.is_dir():
            self.annotations = self.root
        self.images = self.root / "JPEGImages"
        if not self.images.is_dir():
            self.images = self.annotations
        self.image_set = image_set
        self.image_index = self._image_index(image_set)
        self.name = f"{self.root.name}_{Path(image_set).stem}"
        if classes is None:
            found = find_class_file([self.root, self.annotations.parent])
            classes = (("__background__",) + read_class_file(found)) if found else VOC_CLASSES
            self.class_source = str(found) if found else "VOC's 20 (no class file)"
        else:
            self.class_source = "given"
        self.classes = tuple(classes)
        self._class_to_ind = {c: i for i, c in enumerate(self.classes)}
        self._image_files: dict[str, Path] | None = None

    def _image_index(self, image_set: str) -> list[str]:
        sets = self.root / "ImageSets" / "Main"
        listing = Path(image_set)
        if not listing.is_file():
            listing = sets / f"{image_set}.txt"
        if listing.is_file():
            names = []
            for line in listing.read_text(encoding="utf-8-sig").splitlines():
                if line.strip():
                    name = line.split()[0]
                    stem = Path(name).stem
                    names.append(stem if Path(name).suffix.lower() in (".xml", *IMAGE_SUFFIXES)
                                 else name)
            return names
        if sets.is_dir():
            have = sorted(p.stem for p in sets.glob("*.txt"))
            raise DatasetError(f"{listing}: no such image set (there are: "
                               f"{', '.join(have) or 'none'}); --imageset may name a list "
                               "file")
        names = sorted(p.stem for p in self.annotations.glob("*.xml"))
        if not names:
            raise DatasetError(f"{self.annotations}: no annotations (*.xml)")
        log.warning("%s has no ImageSets/Main/: using all %d annotations for image set %r",
                    self.root, len(names), image_set)
        return names

    def _find_image(self, index: str, filename: str | None, where: Path) -> Path:
        if self._image_files is None:
            files = sorted(p for p in self.images.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            self._image_files = {}
            for p in files:
                self._image_files.setdefault(p.name.lower(), p)
                self._image_files.setdefault(p.stem.lower(), p)
        for key in (Path(filename).name.lower() if filename else None, index.lower()):
            if key and key in self._image_files:
                return self._image_files[key]
        raise DatasetError(f"{where}: no image {filename or index + '.jpg'} (nor "
                           f"{index} with .jpg, .jpeg or .png) in {self.images}")

    def image_path_at(self, i: int) -> str:
        index = self.image_index[i]
        return str(self._find_image(index, None, self.annotations / f"{index}.xml"))

    def annotation(self, index: str) -> dict:
        path = self.annotations / f"{index}.xml"
        try:
            tree = ET.parse(path)
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such annotation file") from None
        except ET.ParseError as e:
            raise DatasetError(f"{path}: malformed XML ({e})") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
        image = self._find_image(index, _text(tree.getroot(), "filename"), path)
        size = tree.find("size")
        try:
            width, height = int(_number(size, "width", "")), int(_number(size, "height", ""))
        except (DatasetError, AttributeError):   # <size> missing, empty or not numbers
            width = height = 0
        shown = image_size(image)     # reads the header: an unreadable image fails here
        if width <= 0 or height <= 0:
            width, height = shown
        boxes, classes, difficult = [], [], []
        for k, obj in enumerate(tree.findall("object")):
            name = _text(obj, "name")
            if name is None:
                raise DatasetError(f"{path}: object {k + 1} has no <name>")
            if name not in self._class_to_ind:
                raise DatasetError(
                    f"{path}: unknown class {name!r} (classes from {self.class_source}: "
                    f"{', '.join(self.classes[1:])})")
            bb = obj.find("bndbox")
            where = f"{path}: object {k + 1} ({name})"
            if bb is None:
                raise DatasetError(f"{where}: no <bndbox>")
            # VOC pixel coordinates are 1-based.
            boxes.append([_number(bb, t, where) - 1 for t in ("xmin", "ymin", "xmax", "ymax")])
            classes.append(self._class_to_ind[name])
            difficult.append(_flag(obj, "difficult"))
        boxes_a, keep = clip_boxes_to_image(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                                            width, height, str(path))
        return {"boxes": boxes_a[keep], "image": str(image),
                "gt_classes": np.asarray(classes, dtype=np.int32).reshape(-1)[keep],
                "difficult": np.asarray(difficult, dtype=bool).reshape(-1)[keep],
                "width": width, "height": height}

    def gt_roidb(self) -> Roidb:
        """Every image's annotation; difficult objects are kept, flagged (evaluation ignores
        them; training drops them)."""
        roidb = []
        for index in self.image_index:
            entry = self.annotation(index)
            entry["index"] = index
            roidb.append(entry)
        empty = sum(1 for e in roidb if len(e["gt_classes"]) == 0)
        if empty:
            log.info("%s: %d of %d images have no objects", self.name, empty, len(roidb))
        return roidb
