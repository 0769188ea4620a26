"""Choosing a dataset and turning it into training or test roidbs."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rcnn.config import cfg
from rcnn.datasets.imdb import Roidb, filter_roidb, training_roidb
from rcnn.datasets.voc import VOCDataset, without_difficult

log = logging.getLogger(__name__)


def open_dataset(data_dir: str | Path, image_set: str) -> VOCDataset:
    return VOCDataset(data_dir, image_set)


def train_roidb(imdb: VOCDataset) -> Roidb:
    roidb = filter_roidb(without_difficult(training_roidb(imdb, cfg.TRAIN.USE_FLIPPED)))
    log.info("%s: %d training entries (%s flipped copies)", imdb.name, len(roidb),
             "with" if cfg.TRAIN.USE_FLIPPED else "without")
    return roidb


def seed_everything(seed: int) -> None:
    import caffe

    np.random.seed(seed)
    caffe.set_random_seed(seed)


def set_device(gpu: int | None) -> str:
    """GPU mode on a CUDA build when gpu is given, CPU mode otherwise."""
    import caffe

    if gpu is None or gpu < 0:
        caffe.set_mode_cpu()
        return "CPU"
    caffe.set_mode_gpu()
    caffe.set_device(gpu)
    return f"GPU {gpu}"
