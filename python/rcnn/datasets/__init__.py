"""Datasets: the imdb/roidb interface, PASCAL VOC folders (with VOC2012 / labelme2voc instance
PNGs), COCO-format JSON files (with polygon / RLE segmentations), instance masks kept lazy
and decoded per minibatch (`masks`), image reading (`images`) and a synthetic generator."""
from __future__ import annotations

from pathlib import Path

from rcnn.datasets.errors import DatasetError
from rcnn.datasets.imdb import Imdb

__all__ = ["DatasetError", "Imdb", "is_coco", "open_dataset"]


def is_coco(data: str | Path) -> bool:
    return Path(data).suffix.lower() == ".json"


def open_dataset(data: str | Path, image_set: str,
                 image_root: str | Path | None = None) -> Imdb:
    """The dataset at `data`: a COCO-format JSON file (images under image_root, default its
    folder; image_set is not used), or a VOC-format folder restricted to image_set (a name
    in ImageSets/Main/ or a list file)."""
    if is_coco(data):
        from rcnn.datasets.coco import COCODataset

        return COCODataset(data, image_root)
    from rcnn.datasets.voc import VOCDataset

    if not Path(data).exists():
        raise DatasetError(f"{data}: no such dataset (a VOC-format folder or a COCO JSON file)")
    if not Path(data).is_dir():
        raise DatasetError(f"{data}: not a dataset (a VOC-format folder or a COCO .json file)")
    return VOCDataset(data, image_set)
