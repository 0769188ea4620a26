"""Datasets: the imdb/roidb interface, a PASCAL VOC reader and a synthetic VOC generator."""
from __future__ import annotations

from pathlib import Path

from rcnn.datasets.voc import VOCDataset


def open_dataset(data_dir: str | Path, image_set: str) -> VOCDataset:
    """The dataset at data_dir (a VOC-format folder), restricted to image_set."""
    return VOCDataset(data_dir, image_set)
