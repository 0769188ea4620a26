"""Training augmentation: the config's albumentations transforms and large images' windows,
applied to an image, its boxes and its instance masks together.

Transforms are albumentations' own (Buslaev et al. 2020, https://albumentations.ai), named in
the config (TRAIN.AUGMENT) as {"name": <class>, **arguments}; nothing here transforms pixels
itself. Boxes travel in albumentations' "pascal_voc" format and come back in this project's
(py-faster-rcnn's) inclusive pixel coordinates: [x1, y1, x2, y2] with x2 the last pixel
column, so [x1, y1, x2 + 1, y2 + 1] in albumentations. A box cut by a crop is clipped to it
when at least TRAIN.CROP_MIN_VISIBILITY of its area stays inside and dropped otherwise
(albumentations' BboxParams(min_visibility, clip)); its mask goes with it.

Randomness: each call seeds the albumentations pipeline from the caller's numpy Generator
(the data layer's, which snapshots save), so two runs with one seed see the same images and a
resumed run sees what the uninterrupted one would have.

Large images (TRAIN.WINDOW_SIZE): window_grid() cuts an image into overlapping windows at
native resolution, expand_windows() makes one roidb entry per window, and each time such an
entry is drawn its window is moved by a random offset of up to half the grid step (deepforest's
and SAHI's tiling, with the jitter of a random crop).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Window = tuple[int, int, int, int]   # x0, y0, x1, y1: pixels [x0, x1) x [y0, y1) of the image


@dataclass
class Augmented:
    """An augmented training image: im (H, W, 3) uint8 BGR, boxes (G, 4) float32 in its
    inclusive pixel coordinates, keep (G,) the indices of these objects among the entry's
    (objects dropped by a crop are gone), masks (G, H, W) uint8 0 / 1 or None."""

    im: np.ndarray
    boxes: np.ndarray
    keep: np.ndarray
    masks: np.ndarray | None


def build_transforms(specs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """albumentations transform objects for TRAIN.AUGMENT's specs. Raises ValueError naming
    the entry when a name is not an albumentations transform or its arguments do not fit."""
    if not specs:
        return []
    import albumentations as A

    transforms = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"TRAIN.AUGMENT[{i}]: expected {{name: <albumentations "
                             f"transform>, ...arguments}}, got {spec!r}")
        args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()
                if k != "name"}
        cls = getattr(A, str(spec["name"]), None)
        if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
            raise ValueError(f"TRAIN.AUGMENT[{i}]: {spec['name']!r} is not an "
                             f"albumentations transform")
        try:
            transforms.append(cls(**args))
        except Exception as e:   # albumentations validates with pydantic
            first = str(e).strip().splitlines()
            raise ValueError(f"TRAIN.AUGMENT[{i}] {spec['name']}: bad arguments {args}: "
                             f"{first[-1] if first else e}") from None
    return transforms


def check_train_config(train: Mapping[str, Any]) -> None:
    """The augmentation keys of a TRAIN config section, checked before training starts: a
    ValueError naming the key and its value for SCALE_RANGE (two sizes 0 < lo <= hi, or
    empty), WINDOW_SIZE (an integer >= 0), WINDOW_OVERLAP (in [0, 1)), CROP_MIN_VISIBILITY
    (in [0, 1]); a warning when SCALE_RANGE reaches past MAX_SIZE (such sizes are capped)."""
    sr = tuple(train.get("SCALE_RANGE", ()))
    if sr and not (len(sr) == 2 and all(isinstance(v, int | float) for v in sr)
                   and 0 < sr[0] <= sr[1]):
        raise ValueError(f"TRAIN.SCALE_RANGE: expected (lo, hi) with 0 < lo <= hi (pixels) or "
                         f"() for TRAIN.SCALES, got {sr}")
    size = train.get("WINDOW_SIZE", 0)
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"TRAIN.WINDOW_SIZE: expected a window size in pixels, or 0 for "
                         f"none, got {size!r}")
    overlap = train.get("WINDOW_OVERLAP", 0.0)
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"TRAIN.WINDOW_OVERLAP: expected a fraction in [0, 1), got {overlap}")
    vis = train.get("CROP_MIN_VISIBILITY", 0.5)
    if not 0.0 <= float(vis) <= 1.0:
        raise ValueError(f"TRAIN.CROP_MIN_VISIBILITY: expected a fraction in [0, 1], got "
                         f"{vis}")
    if sr and sr[1] > train.get("MAX_SIZE", sr[1]):
        log.warning("TRAIN.SCALE_RANGE %s reaches past TRAIN.MAX_SIZE %s: a longer side over "
                    "MAX_SIZE caps the scale", sr, train["MAX_SIZE"])


def window_grid(width: int, height: int, size: int, overlap: float) -> list[Window]:
    """Windows of size x size pixels (smaller where the image is) covering a width x height
    image, overlapping by `overlap` of their size, the last window of each row and column
    flush with the image's border: the grid sliced inference runs on (rcnn.sliced's
    slice_windows, SAHI's get_slice_bboxes). Raises ValueError for size < 1 or overlap
    outside [0, 1)."""
    from rcnn.sliced import slice_windows

    return [(int(x0), int(y0), int(x1), int(y1))
            for x0, y0, x1, y1 in slice_windows(height, width, size, overlap)]


def expand_windows(roidb: list[dict[str, Any]], size: int,
                   overlap: float) -> list[dict[str, Any]]:
    """The roidb with each image that has a side over `size` pixels replaced by one entry per
    grid window (window_grid) that holds the centre of at least one of its boxes; the entry
    gets "window" (x0, y0, x1, y1) and "window_step" (the grid step, for the random offset).
    Smaller images are kept whole; a large image none of whose windows holds a box centre
    has no entry left. A flipped entry's windows follow its own (flipped) boxes. Raises
    ValueError as window_grid does."""
    out = []
    for e in roidb:
        w, h = int(e["width"]), int(e["height"])
        if max(w, h) <= size:
            out.append(e)
            continue
        boxes = np.asarray(e["boxes"], dtype=np.float64).reshape(-1, 4)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        step = size - int(overlap * size)
        windows = [win for win in window_grid(w, h, size, overlap)
                   if ((cx >= win[0]) & (cx < win[2]) & (cy >= win[1]) & (cy < win[3])).any()]
        out.extend({**e, "window": win, "window_step": step} for win in windows)
    if len(out) != len(roidb):
        log.info("training windows of %d px: %d roidb entries become %d", size, len(roidb),
                 len(out))
    return out


def jittered_window(entry: dict[str, Any], rng: np.random.Generator) -> Window:
    """entry's window moved by a random offset of up to half its grid step in x and y, kept
    inside the image (the same size)."""
    x0, y0, x1, y1 = entry["window"]
    half = int(entry.get("window_step", 0)) // 2
    dx, dy = (int(v) for v in rng.integers(-half, half + 1, size=2)) if half else (0, 0)
    dx = int(np.clip(dx, -x0, int(entry["width"]) - x1))
    dy = int(np.clip(dy, -y0, int(entry["height"]) - y1))
    return x0 + dx, y0 + dy, x1 + dx, y1 + dy


def objects_in(boxes: np.ndarray, window: Window) -> np.ndarray:
    """Indices of the boxes (G, 4, inclusive pixel coordinates) that overlap the window."""
    x0, y0, x1, y1 = window
    b = np.asarray(boxes).reshape(-1, 4)
    return np.flatnonzero((b[:, 0] < x1) & (b[:, 2] >= x0) & (b[:, 1] < y1) & (b[:, 3] >= y0))


def augment(im: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None,
            transforms: Sequence[Any], rng: np.random.Generator,
            min_visibility: float, window: Window | None = None) -> Augmented:
    """Crops im (H, W, 3) uint8 BGR to `window` (if given), then applies `transforms` (from
    build_transforms) to it, its boxes (G, 4, inclusive pixel coordinates) and its masks
    (G, H, W) uint8 or None, seeded from rng. Boxes left with less than min_visibility of
    their area are dropped with their masks; Augmented.keep says which objects remain."""
    import albumentations as A

    steps = ([A.Crop(*window)] if window is not None else []) + list(transforms)
    with warnings.catch_warnings():   # "no transform to process bboxes": photometric only
        warnings.simplefilter("ignore", UserWarning)
        pipeline = A.Compose(steps, bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["index"], min_visibility=float(min_visibility),
            clip=True), seed=int(rng.integers(2 ** 31)))
    g = len(boxes)
    bboxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    bboxes[:, 2:] += 1.0   # inclusive last pixel -> exclusive edge
    args: dict[str, Any] = {"image": np.ascontiguousarray(im[:, :, ::-1]),   # RGB
                            "bboxes": bboxes, "index": np.arange(g)}
    if masks is not None and g:
        args["masks"] = masks
    out = pipeline(**args)
    image = out["image"]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        names = ", ".join(type(t).__name__ for t in transforms)
        raise ValueError(f"TRAIN.AUGMENT ({names}) made a {image.dtype} image of shape "
                         f"{image.shape}; the transforms must keep 8-bit 3-channel images "
                         f"(the net subtracts PIXEL_MEANS itself: no Normalize, no one-channel "
                         f"ToGray)")
    keep = np.asarray(out["index"], dtype=np.int64).reshape(-1)
    # albumentations works in fractions of the image: rounding to 1/1000 px gives back the
    # whole pixels of flips, turns and crops
    new_boxes = np.round(np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4), 3)
    new_boxes[:, 2:] -= 1.0
    new_boxes = new_boxes.astype(np.float32)
    new_masks = None
    if masks is not None:
        if g:
            new_masks = np.asarray(out["masks"], dtype=np.uint8)[keep]
        else:
            new_masks = np.zeros((0,) + image.shape[:2], dtype=np.uint8)
    return Augmented(np.ascontiguousarray(image[:, :, ::-1]), new_boxes, keep, new_masks)
