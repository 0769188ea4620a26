"""Configuration: defaults (py-faster-rcnn's keys where they exist), YAML files or mappings
merged over them, and `--set KEY VALUE` overrides.

A config is built with `load()` and passed, or the section it needs (`c.TRAIN`, `c.TEST`), to
the functions that use it. The module-level `cfg` is the *active* config: `activate()` sets it
right before a net is built, and only the pycaffe Python layers read it, in their `setup`
(Caffe constructs them with nothing but a param_str)."""
from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class AttrDict(dict):
    """A dict whose keys are also attributes: cfg.TRAIN.SCALES."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _tree(d: Mapping[str, Any]) -> AttrDict:
    return AttrDict({k: _tree(v) if isinstance(v, Mapping) else v for k, v in d.items()})


DEFAULTS: dict[str, Any] = {
    "TRAIN": {
        "SCALES": (600,),            # shorter image side(s) used in training
        "MAX_SIZE": 1000,            # cap on the longer side
        "IMS_PER_BATCH": 1,          # images per minibatch (RPN training needs 1)
        "BATCH_SIZE": 128,           # RoIs per image for the detection head
        "FG_FRACTION": 0.25,
        "FG_THRESH": 0.5,
        "BG_THRESH_HI": 0.5,
        "BG_THRESH_LO": 0.1,
        "USE_FLIPPED": True,
        "BBOX_REG": True,
        "BBOX_THRESH": 0.5,
        "SNAPSHOT_ITERS": 10000,
        "SNAPSHOT_INFIX": "",
        "BBOX_NORMALIZE_TARGETS": True,
        "BBOX_INSIDE_WEIGHTS": (1.0, 1.0, 1.0, 1.0),
        "BBOX_NORMALIZE_TARGETS_PRECOMPUTED": True,
        "BBOX_NORMALIZE_MEANS": (0.0, 0.0, 0.0, 0.0),
        "BBOX_NORMALIZE_STDS": (0.1, 0.1, 0.2, 0.2),
        "PROPOSAL_METHOD": "gt",
        "ASPECT_GROUPING": True,
        "HAS_RPN": True,
        "RPN_POSITIVE_OVERLAP": 0.7,
        "RPN_NEGATIVE_OVERLAP": 0.3,
        "RPN_CLOBBER_POSITIVES": False,
        "RPN_FG_FRACTION": 0.5,
        "RPN_BATCHSIZE": 256,
        "RPN_NMS_THRESH": 0.7,
        "RPN_PRE_NMS_TOP_N": 12000,
        "RPN_POST_NMS_TOP_N": 2000,
        "RPN_MIN_SIZE": 16,
        "RPN_BBOX_INSIDE_WEIGHTS": (1.0, 1.0, 1.0, 1.0),
        "RPN_POSITIVE_WEIGHT": -1.0,
        # Augmentation (rcnn.augment). Scale jitter: a shorter side drawn uniformly from
        # [lo, hi] per minibatch instead of one of SCALES (empty: SCALES).
        "SCALE_RANGE": (),
        # albumentations transforms, each {"name": <albumentations class>, **its arguments},
        # applied in order at native resolution to the image, its boxes and its masks before
        # the resize to the training scale (empty: none; flips stay USE_FLIPPED's).
        "AUGMENT": (),
        # a box cut by a crop (a window or a crop transform) is clipped to it when at least
        # this fraction of its area is inside, and dropped otherwise
        "CROP_MIN_VISIBILITY": 0.5,
        # Large images: an image with a side over WINDOW_SIZE pixels is trained on as windows
        # of WINDOW_SIZE x WINDOW_SIZE at native resolution, a grid overlapping by
        # WINDOW_OVERLAP (a fraction of the size), each drawn at a random offset around its
        # grid position (0: off, the whole image is resized).
        "WINDOW_SIZE": 0,
        "WINDOW_OVERLAP": 0.25,
    },
    "TEST": {
        "SCALES": (600,),
        "MAX_SIZE": 1000,
        "NMS": 0.3,
        "SVM": False,
        "BBOX_REG": True,
        "HAS_RPN": True,
        "PROPOSAL_METHOD": "selective_search",
        "RPN_NMS_THRESH": 0.7,
        "RPN_PRE_NMS_TOP_N": 6000,
        "RPN_POST_NMS_TOP_N": 300,
        "RPN_MIN_SIZE": 16,
        "SCORE_THRESH": 0.0,         # detections kept for evaluation
        "MAX_PER_IMAGE": 100,
        # a Mask R-CNN segments the detections scoring at least this (Detectron2's
        # SCORE_THRESH_TEST); the others keep their box and have no mask (0: segment all)
        "MASK_SCORE_THRESH": 0.05,
        # Sliced inference (rcnn.sliced): images with a side over SLICE_SIZE pixels are run
        # as overlapping SLICE_SIZE x SLICE_SIZE windows at native resolution (0: off),
        # optionally plus the whole image resized (SLICE_FULL_IMAGE); detections are mapped
        # back and merged per class by SLICE_MERGE ("nms" or "greedy_nmm") at SLICE_MERGE_IOU.
        "SLICE_SIZE": 0,
        "SLICE_OVERLAP": 0.25,
        "SLICE_FULL_IMAGE": False,
        "SLICE_MERGE": "nms",
        "SLICE_MERGE_IOU": 0.5,
    },
    "DEDUP_BOXES": 1.0 / 16.0,
    "PIXEL_MEANS": ((102.9801, 115.9465, 122.7717),),  # BGR, as in py-faster-rcnn
    "RNG_SEED": 3,
    "EPS": 1e-14,
    "USE_GPU_NMS": False,
    "GPU_ID": 0,
    "EXP_DIR": "default",
    "MODEL": {
        "ANCHOR_SCALES": (8, 16, 32),   # anchors of size 16 * scale
        "ANCHOR_RATIOS": (0.5, 1, 2),
        "FEAT_STRIDE": 16,
    },
}

def defaults() -> AttrDict:
    """A fresh copy of the defaults."""
    return _tree(copy.deepcopy(DEFAULTS))


# The active config, read by the pycaffe Python layers at setup; set it with activate().
cfg: AttrDict = defaults()


def _coerce(old: Any, new: Any, key: str) -> Any:
    """new, converted to the type of the value it replaces (lists to tuples, ints to floats)."""
    if old is None or new is None:
        return new
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            raise ValueError(f"{key}: expected a mapping, got {new!r}")
        return new
    if isinstance(old, tuple | list | np.ndarray) and isinstance(new, tuple | list):
        return tuple(new)
    if isinstance(old, bool) and not isinstance(new, bool):
        raise ValueError(f"{key}: expected true/false, got {new!r}")
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        return float(new)
    if type(old) is not type(new) and not (isinstance(old, tuple) and isinstance(new, tuple)):
        raise ValueError(f"{key}: expected {type(old).__name__}, got {new!r}")
    return new


def merge(into: AttrDict, other: Mapping[str, Any], prefix: str = "") -> None:
    """Merges other into `into`; unknown keys and type mismatches raise ValueError."""
    for k, v in other.items():
        key = f"{prefix}{k}"
        if k not in into:
            raise ValueError(f"unknown config key {key}")
        if isinstance(into[k], Mapping):
            if not isinstance(v, Mapping):
                raise ValueError(f"{key}: expected a mapping, got {v!r}")
            merge(into[k], v, key + ".")
        else:
            into[k] = _coerce(into[k], v, key)


def merge_file(path: str | Path, into: AttrDict) -> None:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    merge(into, data)


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return yaml.safe_load(text)


def merge_list(pairs: Iterable[str], into: AttrDict) -> None:
    """['TRAIN.SCALES', '(256,)', 'RNG_SEED', '7'] -> overrides."""
    items = list(pairs)
    if len(items) % 2:
        raise ValueError(f"--set takes KEY VALUE pairs, got {items}")
    for key, text in zip(items[::2], items[1::2], strict=True):
        node = into
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], Mapping):
                raise ValueError(f"unknown config key {key}")
            node = node[p]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key {key}")
        node[parts[-1]] = _coerce(node[parts[-1]], _parse_value(text), key)


def load(*sources: str | Path | Mapping[str, Any], overrides: Iterable[str] = ()) -> AttrDict:
    """The defaults, then each source in order (a YAML file's path, or a mapping), then
    `--set`-style KEY VALUE overrides. Unknown keys and type mismatches raise ValueError."""
    c = defaults()
    for source in sources:
        if isinstance(source, Mapping):
            merge(c, source)
        else:
            merge_file(source, c)
    merge_list(overrides, c)
    return c


def activate(c: AttrDict) -> None:
    """Makes a copy of c the active config that the pycaffe Python layers read at setup: call
    it before building a net that has Python layers."""
    cfg.clear()
    cfg.update(_tree(copy.deepcopy(dict(c))))


def pixel_means(c: AttrDict) -> np.ndarray:
    return np.array(c.PIXEL_MEANS, dtype=np.float32)
