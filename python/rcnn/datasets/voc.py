"""PASCAL VOC format, as VOC and annotation tools (labelme2voc, LabelImg, CVAT, Roboflow)
write it: Annotations/*.xml (or the XML files in the folder itself), JPEGImages/ (or the
images beside the XML files), ImageSets/Main/<set>.txt (optional: without it every annotation
is used), and the class names in a file of the folder's (classes.txt, labelme's
class_names.txt, CVAT's labelmap.txt, LabelImg's predefined_classes.txt) or VOC's 20.

Tolerated: empty or missing <difficult>/<truncated>, float coordinates, a missing <size> (read
from the image), boxes touching or crossing the border (clipped, with a warning naming the
file), images without objects, .jpg/.jpeg/.png in any case.

Instance masks, as VOC2012 and labelme's labelme2voc write them (then every entry has
"segms", see rcnn.datasets.masks):
- SegmentationObject/<id>.png (or labelme's older SegmentationObjectPNG/): an index PNG
  (palette or grey), pixel value k = the k-th object of the XML (VOC2012's convention), 0
  background, 255 the void border (no object's). Boxes and classes come from the XML; an
  object with no PNG has no mask.
- Without an XML, the image's objects come from the PNGs: each instance value is an object,
  its box the extent of its pixels, its class the value of SegmentationClass/<id>.png (or
  SegmentationClassPNG/) under it (class index per pixel in the folder's class order, 1..K, 0
  background, 255 void). Instance values without any class pixel are left out with a warning;
  a class index beyond the class list is an error.
- An instance PNG of another size than the image's: a warning, the image's objects have no
  masks (with an XML; without one it is an error). A PNG drawn on the stored pixels of an
  image shown turned by its EXIF orientation (its size says so) is turned like the image."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rcnn.datasets.classes import VOC_CLASSES, find_class_file, read_class_file
from rcnn.datasets.errors import DatasetError
from rcnn.datasets.images import (
    IMAGE_SUFFIXES,
    check_orientation,
    image_header,
    image_size,
    orientation_applied,
)
from rcnn.datasets.imdb import Imdb, Roidb
from rcnn.datasets.masks import VOID, png_header, read_index_png

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
        self._segmentation_dirs: dict[str, Path | None] = {}
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

    def _segmentation_dir(self, kind: str) -> Path | None:
        """SegmentationObject / SegmentationClass (VOC2012, labelme2voc), or labelme's older
        SegmentationObjectPNG / SegmentationClassPNG; None when the folder has neither."""
        if kind not in self._segmentation_dirs:
            found = None
            for name in (f"Segmentation{kind}", f"Segmentation{kind}PNG"):
                folder = self.root / name
                if folder.is_dir() and any(folder.glob("*.png")):
                    found = folder
                    break
            self._segmentation_dirs[kind] = found
        return self._segmentation_dirs[kind]

    @property
    def has_masks(self) -> bool:
        """Whether the folder has instance PNGs (SegmentationObject/)."""
        return self._segmentation_dir("Object") is not None

    def _png(self, kind: str, index: str) -> Path | None:
        folder = self._segmentation_dir(kind)
        path = folder / f"{index}.png" if folder else None
        return path if path is not None and path.is_file() else None

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
        segmentation_list = self.root / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        if not sets.is_dir() and segmentation_list.is_file():
            return self._image_index(str(segmentation_list))
        if sets.is_dir():
            have = sorted(p.stem for p in sets.glob("*.txt"))
            raise DatasetError(f"{listing}: no such image set (there are: "
                               f"{', '.join(have) or 'none'}); --imageset may name a list "
                               "file")
        names = {p.stem for p in self.annotations.glob("*.xml")}
        masks = self._segmentation_dir("Object")
        if masks is not None:        # images annotated by instance PNGs only (labelme2voc)
            names |= {p.stem for p in masks.glob("*.png")}
        if not names:
            raise DatasetError(f"{self.annotations}: no annotations (*.xml, or instance PNGs "
                               "in SegmentationObject/)")
        log.warning("%s has no ImageSets/Main/: using all %d annotations for image set %r",
                    self.root, len(names), image_set)
        return sorted(names)

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
        if not path.is_file():
            png = self._png("Object", index)
            if png is not None:
                return self._annotation_from_masks(index, png)
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
        sized = width > 0 and height > 0
        if not sized:
            width, height = shown
        check_orientation(image, (width, height) if sized else None)
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
        entry = {"boxes": boxes_a[keep], "image": str(image),
                 "gt_classes": np.asarray(classes, dtype=np.int32).reshape(-1)[keep],
                 "difficult": np.asarray(difficult, dtype=bool).reshape(-1)[keep],
                 "width": width, "height": height, "source": str(path),
                 "object_ids": np.arange(1, len(classes) + 1, dtype=np.int64)[keep]}
        if self.has_masks:
            segms = self._instance_refs(self._png("Object", index), len(classes), image,
                                        (width, height))
            entry["segms"] = [s for s, k in zip(segms, keep, strict=True) if k]
        return entry

    def _instance_refs(self, png: Path | None, count: int, image: Path,
                       size: tuple[int, int]) -> list[dict | None]:
        """The count objects' masks in an instance PNG (object k: value k), checked against the
        image's size; [None] * count (no masks) for no PNG or one of another size (warned)."""
        if png is None or count == 0:
            return [None] * count
        png_size, _ = png_header(png)
        stored, orientation = image_header(image)
        turn = 1
        if png_size != tuple(size):
            if orientation_applied(stored, orientation, size) and png_size == tuple(stored):
                turn = orientation    # drawn on the stored pixels: turned like the image
                log.info("%s: drawn on the stored pixels of %s (EXIF orientation %d): turned "
                         "like the image", png, image, orientation)
            else:
                log.warning("%s: the instance PNG is %d x %d but the image %s is %d x %d: its "
                            "%d object%s no masks (boxes kept)", png, *png_size, image.name,
                            *size, count, " has" if count == 1 else "s have")
                return [None] * count
        elif orientation_applied(stored, orientation, size) and tuple(stored) == tuple(size):
            log.warning("%s: %s is shown turned by EXIF orientation %d and the PNG's size "
                        "cannot tell on which pixels it was drawn: taken as drawn on the image "
                        "as shown", png, image.name, orientation)
        extra = {"orientation": turn} if turn != 1 else {}
        return [{"png": str(png), "instance": k, "objects": count, **extra}
                for k in range(1, count + 1)]

    def _annotation_from_masks(self, index: str, png: Path) -> dict:
        """An image annotated by instance PNGs alone (labelme2voc): each instance value is an
        object, its box its pixels' extent, its class the SegmentationClass PNG's majority
        value under it."""
        image = self._find_image(index, None, png)
        png_size, _ = png_header(png)
        stored, orientation = image_header(image)
        shown = image_size(image)
        if png_size not in (tuple(shown), tuple(stored)):
            raise DatasetError(f"{png}: the instance PNG is {png_size[0]} x {png_size[1]} but "
                               f"the image {image.name} is {shown[0]} x {shown[1]}")
        check_orientation(image, png_size)       # the PNG is the annotation here
        class_png = self._png("Class", index)
        if class_png is None:
            raise DatasetError(f"{png}: no Annotations/{index}.xml and no "
                               f"SegmentationClass/{index}.png: its instances have no class")
        if png_header(class_png)[0] != png_size:
            raise DatasetError(f"{class_png}: the class PNG is {png_header(class_png)[0][0]} x "
                               f"{png_header(class_png)[0][1]} but the instance PNG is "
                               f"{png_size[0]} x {png_size[1]}")
        instances, classes = read_index_png(png), read_index_png(class_png)
        boxes, gt_classes, ids = [], [], []
        for k in np.unique(instances).tolist():
            if k in (0, VOID):
                continue
            rows, cols = np.nonzero(instances == k)
            under = classes[rows, cols]
            counts = np.bincount(under[(under != 0) & (under != VOID)])
            if counts.sum() == 0:
                log.warning("%s: instance %d has no class (only background or void under it "
                            "in %s): left out", png, k, class_png)
                continue
            cls = int(np.argmax(counts))
            if cls >= len(self.classes):
                raise DatasetError(
                    f"{class_png}: instance {k} has class index {cls}, not among the "
                    f"{len(self.classes) - 1} classes (from {self.class_source})")
            if counts.sum() != counts[cls]:
                others = ", ".join(f"index {c}: {n} pixels" for c, n in enumerate(counts)
                                   if n and c != cls)
                log.warning("%s: instance %d also covers other classes (%s) in %s: taken as "
                            "%s", png, k, others, class_png, self.classes[cls])
            boxes.append([cols.min(), rows.min(), cols.max(), rows.max()])
            gt_classes.append(cls)
            ids.append(k)
        return {"boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                "gt_classes": np.asarray(gt_classes, dtype=np.int32),
                "difficult": np.zeros(len(ids), dtype=bool), "image": str(image),
                "width": png_size[0], "height": png_size[1], "source": str(png),
                "object_ids": np.asarray(ids, dtype=np.int64),
                "segms": [{"png": str(png), "instance": k} for k in ids]}

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
        if self.has_masks:
            unmasked = sum(1 for e in roidb for s in e["segms"] if s is None)
            objects = sum(len(e["segms"]) for e in roidb)
            if unmasked:
                log.info("%s: %d of %d objects have no instance mask", self.name, unmasked,
                         objects)
        return roidb
