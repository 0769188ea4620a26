"""Training minibatches: one roidb entry turned into the blobs an end-to-end Faster R-CNN
trains on."""
from __future__ import annotations

from typing import Any

import numpy as np

from rcnn.blob import images_to_blob, prep_image
from rcnn.config import AttrDict
from rcnn.datasets.images import read_image_bgr


def gt_mask_blob(entry: dict[str, Any], objects: np.ndarray) -> np.ndarray:
    """(G, H, W) float32 ground-truth masks of entry's objects `objects` (indices into its
    boxes) in the original image, flipped with the entry: 0 / 1, or all -1 for an object
    without a mask (its RoIs are then ignored by the mask loss). Decoded now, from the
    entry's polygons, RLE or instance PNG."""
    from rcnn.datasets.masks import instance_masks

    masks = instance_masks(entry)[objects].astype(np.float32)
    segms = entry.get("segms") or [None] * len(entry["boxes"])
    for k, i in enumerate(objects):
        if segms[i] is None:
            masks[k] = -1.0
    return masks


def get_minibatch(roidb: list[dict[str, Any]], rng: np.random.Generator,
                  train: AttrDict, pixel_means: np.ndarray,
                  with_masks: bool = False) -> dict[str, np.ndarray]:
    """data (1, 3, H, W), im_info (1, 3) = [height, width, scale], gt_boxes (G, 5) =
    [x1, y1, x2, y2, class] in the scaled image, for an end-to-end (RPN) minibatch. The
    image is scaled to one of train.SCALES (chosen with rng), at most train.MAX_SIZE.
    with_masks adds gt_masks (G, H0, W0), gt_mask_blob's masks of the G objects at the
    original image size (a Mask R-CNN's train net)."""
    if len(roidb) != 1:
        raise ValueError(f"RoIDataLayer: end-to-end training takes one image per batch, got "
                         f"{len(roidb)} (set TRAIN.IMS_PER_BATCH: 1)")
    entry = roidb[0]
    target = train.SCALES[int(rng.integers(len(train.SCALES)))]
    im = read_image_bgr(entry["image"], (entry["width"], entry["height"]))
    if entry.get("flipped"):
        im = im[:, ::-1]
    im, scale = prep_image(np.ascontiguousarray(im), pixel_means, target, train.MAX_SIZE)
    fg = np.where(entry["gt_classes"] > 0)[0]
    gt = np.zeros((len(fg), 5), dtype=np.float32)
    gt[:, :4] = entry["boxes"][fg] * scale
    gt[:, 4] = entry["gt_classes"][fg]
    blobs = {"data": images_to_blob([im]),
             "im_info": np.array([[im.shape[0], im.shape[1], scale]], dtype=np.float32),
             "gt_boxes": gt}
    if with_masks:
        blobs["gt_masks"] = gt_mask_blob(entry, fg)
    return blobs
