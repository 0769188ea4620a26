"""Training minibatches: one roidb entry turned into the blobs an end-to-end Faster R-CNN
trains on."""
from __future__ import annotations

from typing import Any

import numpy as np

from rcnn.blob import images_to_blob, prep_image
from rcnn.config import AttrDict
from rcnn.datasets.images import read_image_bgr


def get_minibatch(roidb: list[dict[str, Any]], rng: np.random.Generator,
                  train: AttrDict, pixel_means: np.ndarray) -> dict[str, np.ndarray]:
    """data (1, 3, H, W), im_info (1, 3) = [height, width, scale], gt_boxes (G, 5) =
    [x1, y1, x2, y2, class] in the scaled image, for an end-to-end (RPN) minibatch. The
    image is scaled to one of train.SCALES (chosen with rng), at most train.MAX_SIZE."""
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
    return {"data": images_to_blob([im]),
            "im_info": np.array([[im.shape[0], im.shape[1], scale]], dtype=np.float32),
            "gt_boxes": gt}
