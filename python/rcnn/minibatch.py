"""Training minibatches: one roidb entry turned into the blobs an end-to-end Faster R-CNN
trains on."""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from rcnn.augment import Augmented, augment, jittered_window, objects_in
from rcnn.blob import images_to_blob, prep_image
from rcnn.config import AttrDict
from rcnn.datasets.images import read_image_bgr


def gt_mask_blob(entry: dict[str, Any], objects: np.ndarray) -> np.ndarray:
    """(G, H, W) float32 ground-truth masks of entry's objects `objects` (indices into its
    boxes) in the original image, flipped with the entry: 0 / 1, or all -1 for an object
    without a mask (its RoIs are then ignored by the mask loss). Decoded now, from the
    entry's polygons, RLE or instance PNG."""
    from rcnn.datasets.masks import instance_masks

    return ignore_maskless(instance_masks(entry)[objects], entry.get("segms"), objects)


def ignore_maskless(masks: np.ndarray, segms: list[Any] | None,
                    objects: np.ndarray) -> np.ndarray:
    """masks (G, H, W) 0 / 1 of the objects `objects` (indices into segms) as float32, all -1
    for each object whose segms entry is None (no mask, or one dropped when decoded): the
    mask loss ignores its RoIs rather than learning an empty mask."""
    out = masks.astype(np.float32)
    if not segms:   # a dataset without masks
        out[:] = -1.0
        return out
    for k, i in enumerate(objects):
        if segms[i] is None:
            out[k] = -1.0
    return out


log = logging.getLogger(__name__)
_fallbacks: set[str] = set()   # images whose augmentation fell back (warned once each)

# Decoded large images, for their windows: a 2300 x 2500 PNG takes ~0.25 s to decode, more
# than a training iteration on one of its windows. The last _CACHED images are kept.
_CACHED = 2
_cache: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()


def read_window_source(entry: dict[str, Any]) -> np.ndarray:
    """read_image_bgr of a windowed entry's image, (H, W, 3) uint8 BGR, from a cache of the
    last few: shared and read-only (slice it, never write to it)."""
    key = (str(entry["image"]), int(entry["width"]), int(entry["height"]))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    im = read_image_bgr(entry["image"], (entry["width"], entry["height"]))
    im.setflags(write=False)
    _cache[key] = im
    while len(_cache) > _CACHED:
        _cache.popitem(last=False)
    return im


def target_scale(train: AttrDict, rng: np.random.Generator) -> int:
    """The shorter side this minibatch's image is resized to: one of train.SCALES, or with
    train.SCALE_RANGE (lo, hi) an integer drawn uniformly from [lo, hi] (scale jitter)."""
    if train.get("SCALE_RANGE"):
        lo, hi = (int(v) for v in train.SCALE_RANGE)   # checked by check_train_config
        return int(rng.integers(lo, hi + 1))
    return train.SCALES[int(rng.integers(len(train.SCALES)))]


def _one_draw(entry: dict[str, Any], im: np.ndarray, objs: np.ndarray,
              window: tuple[int, int, int, int] | None, transforms: Sequence[Any],
              rng: np.random.Generator, min_visibility: float,
              with_masks: bool) -> tuple[Augmented, np.ndarray, np.ndarray | None]:
    """One draw of _augmented: the window's crop rule on the boxes of objects `objs`
    (indices into the entry), then the transforms on the window with the surviving objects'
    masks, decoded inside the window only. Returns the result, the kept objects' indices
    and their masks as float32 (-1 where an object has no mask, or its mask was dropped when
    decoded)."""
    from rcnn.datasets.imdb import select_objects
    from rcnn.datasets.masks import instance_masks

    boxes = np.asarray(entry["boxes"], dtype=np.float32)[objs]
    if window is not None:
        cut = augment(im, boxes, None, [], rng, min_visibility, window)
        im, boxes, objs = cut.im, cut.boxes, objs[cut.keep]
    masks, sel = None, None
    if with_masks:
        sel = select_objects(entry, objs)
        masks = instance_masks(sel, window)
    if transforms:
        out = augment(im, boxes, masks, transforms, rng, min_visibility)
    else:
        out = Augmented(im, boxes, np.arange(len(objs)), masks)
    gt_masks = (ignore_maskless(out.masks, sel.get("segms"), out.keep)
                if sel is not None else None)
    return out, objs[out.keep], gt_masks


def _augmented(entry: dict[str, Any], im: np.ndarray, fg: np.ndarray,
               rng: np.random.Generator, train: AttrDict, transforms: Sequence[Any],
               with_masks: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                          np.ndarray | None]:
    """The entry's image (H, W, 3) uint8 BGR, boxes (G, 4), classes (G,) and masks
    (G, H, W; -1 where an object has no mask) after its window (a random offset,
    rcnn.augment.jittered_window) and train.AUGMENT. A draw that leaves no box is redrawn;
    after 10 such draws (a warning, once per image) the window is taken at its grid position
    without transforms and with every box it touches."""
    boxes = np.asarray(entry["boxes"], dtype=np.float32)
    min_visibility = float(train.CROP_MIN_VISIBILITY)
    draws = 10 if len(fg) else 0
    for attempt in range(draws + 1):
        last = attempt == draws
        window = None
        if "window" in entry:
            window = tuple(entry["window"]) if last else jittered_window(entry, rng)
        objs = fg[objects_in(boxes[fg], window)] if window is not None else fg
        out, kept, gt_masks = _one_draw(entry, im, objs, window, [] if last else transforms,
                                        rng, 0.0 if last else min_visibility, with_masks)
        if len(kept) or last:
            break
    if draws and last and str(entry["image"]) not in _fallbacks:
        _fallbacks.add(str(entry["image"]))
        log.warning("%s: 10 augmentation draws left no box (TRAIN.CROP_MIN_VISIBILITY %.2f); "
                    "this minibatch uses the window at its grid position, untransformed "
                    "(warned once per image)", entry["image"], min_visibility)
    return out.im, out.boxes, np.asarray(entry["gt_classes"])[kept], gt_masks


def get_minibatch(roidb: list[dict[str, Any]], rng: np.random.Generator,
                  train: AttrDict, pixel_means: np.ndarray,
                  with_masks: bool = False,
                  transforms: Sequence[Any] = ()) -> dict[str, np.ndarray]:
    """data (1, 3, H, W), im_info (1, 3) = [height, width, scale], gt_boxes (G, 5) =
    [x1, y1, x2, y2, class] in the scaled image, for an end-to-end (RPN) minibatch.

    The entry's image is flipped if the entry is, cut to its window (rcnn.augment's
    training windows) and passed through `transforms` (rcnn.augment.build_transforms of
    train.AUGMENT) when it has either, then scaled to target_scale() (chosen with rng), at
    most train.MAX_SIZE. with_masks adds gt_masks (G, H0, W0), the objects' masks at the
    size of the image before that scaling (gt_mask_blob's values; a Mask R-CNN's train net).
    Without windows and transforms, rng draws only the scale (py-faster-rcnn's minibatch)."""
    if len(roidb) != 1:
        raise ValueError(f"RoIDataLayer: end-to-end training takes one image per batch, got "
                         f"{len(roidb)} (set TRAIN.IMS_PER_BATCH: 1)")
    entry = roidb[0]
    target = target_scale(train, rng)
    if "window" in entry:
        im = read_window_source(entry)
    else:
        im = read_image_bgr(entry["image"], (entry["width"], entry["height"]))
    if entry.get("flipped"):
        im = im[:, ::-1]
    fg = np.where(entry["gt_classes"] > 0)[0]
    if transforms or "window" in entry:
        im, boxes, classes, masks = _augmented(entry, im, fg, rng, train, transforms,
                                               with_masks)
    else:
        boxes, classes = entry["boxes"][fg], entry["gt_classes"][fg]
        masks = gt_mask_blob(entry, fg) if with_masks else None
    im, scale = prep_image(np.ascontiguousarray(im), pixel_means, target, train.MAX_SIZE)
    gt = np.zeros((len(boxes), 5), dtype=np.float32)
    gt[:, :4] = boxes * scale
    gt[:, 4] = classes
    blobs = {"data": images_to_blob([im]),
             "im_info": np.array([[im.shape[0], im.shape[1], scale]], dtype=np.float32),
             "gt_boxes": gt}
    if with_masks:
        blobs["gt_masks"] = masks
    return blobs
