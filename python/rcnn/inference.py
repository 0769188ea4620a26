"""Running a trained detector on an image: im_detect, per-class NMS, and for a Mask R-CNN
test net the masks of the final detections (im_segment). The loop over a dataset is
rcnn.pipeline.detect_dataset."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from rcnn.blob import images_to_blob, prep_image
from rcnn.boxes import bbox_transform_inv, clip_boxes, nms
from rcnn.config import AttrDict

log = logging.getLogger(__name__)


MASK_ROIS = "mask_rois"   # a Mask R-CNN test net's input: the boxes to segment


def mask_branch_start(net) -> int | None:
    """The index of the first layer of a test net's mask branch (the first layer that reads
    the mask_rois input), or None for a net without one. Raises ValueError when a layer
    the detections need (making rois, cls_prob or bbox_pred) comes after it: the branch must
    follow the box head (as rcnn.models places it), so that detection can stop before it."""
    names = list(net._layer_names)
    bottoms = net.bottom_names   # (pycaffe builds these dicts anew on every access)
    start = next((i for i, name in enumerate(names) if MASK_ROIS in bottoms[name]), None)
    if start is None:
        return None
    tops = net.top_names
    late = [name for name in names[start:]
            if {"rois", "cls_prob", "bbox_pred"} & set(tops[name])]
    if late:
        raise ValueError(f"the test net's mask branch starts at layer '{names[start]}', before "
                         f"layer(s) {', '.join(late)} of the detection: put the mask branch "
                         "after the box head")
    return start


def im_detect(net, im: np.ndarray, test: AttrDict,
              pixel_means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class scores (R, C) and class-specific boxes (R, 4C) in image coordinates for one
    BGR uint8 image, from a test net with inputs data, im_info and outputs rois, cls_prob,
    bbox_pred. `test` is the config's TEST section (SCALES, MAX_SIZE, BBOX_REG). A Mask
    R-CNN's mask branch is not run (im_segment runs it on the final detections)."""
    prepped, scale = prep_image(im, pixel_means, test.SCALES[0], test.MAX_SIZE)
    blob = images_to_blob([prepped])
    net.blobs["data"].reshape(*blob.shape)
    net.blobs["data"].data[...] = blob
    net.blobs["im_info"].reshape(1, 3)
    net.blobs["im_info"].data[...] = [[blob.shape[2], blob.shape[3], scale]]
    start = mask_branch_start(net)
    if start is None:
        net.forward()
    else:   # up to the mask branch (its outputs: only the last layer's tops)
        net.forward(end=net._layer_names[start - 1])
    rois = net.blobs["rois"].data[:, 1:5] / scale
    scores = net.blobs["cls_prob"].data.reshape(rois.shape[0], -1).copy()
    if test.BBOX_REG:
        deltas = net.blobs["bbox_pred"].data.reshape(rois.shape[0], -1)
        boxes = clip_boxes(bbox_transform_inv(rois, deltas), im.shape)
    else:
        boxes = np.tile(rois, (1, scores.shape[1]))
    return scores, boxes


def im_segment(net, dets: list[np.ndarray], height: int, width: int, score_thresh: float = 0.0,
               threshold: float = 0.5,
               encode: Callable[[np.ndarray], Any] | None = None) -> list[list[Any]]:
    """The masks of one image's final detections, from the Mask R-CNN test net that im_detect
    has just run on it (its input scale and features are reused).

    dets[c]: (K_c, 5) detections of class c in image coordinates (detections_per_class).
    Each detection scoring at least score_thresh (the config's TEST.MASK_SCORE_THRESH) goes
    through the mask branch at its box; the sigmoid of its class's channel of mask_logits
    (M x M) is pasted into the height x width image at the box (rcnn.masks.paste: bilinear,
    then >= threshold). Returns masks[c][k], (height, width) uint8 0 / 1 (or
    encode(mask), made as soon as the mask is pasted, so that only one image-sized mask
    exists at a time), or None for a detection under score_thresh, aligned with dets[c];
    masks[0] is empty. Raises ValueError for a net without a mask branch."""
    from rcnn.masks.paste import paste_mask

    start = mask_branch_start(net)
    if start is None:
        raise ValueError("im_segment: the test net has no mask branch (no 'mask_rois' input)")
    masks: list[list[Any]] = [[None] * len(d) for d in dets]
    which = [(c, k) for c, d in enumerate(dets) for k in np.where(d[:, 4] >= score_thresh)[0]]
    if not which:
        return masks
    boxes = np.array([dets[c][k, :4] for c, k in which], dtype=np.float64)
    scale = float(net.blobs["im_info"].data[0, 2])
    rois = np.hstack([np.zeros((boxes.shape[0], 1)), boxes * scale]).astype(np.float32)
    net.blobs[MASK_ROIS].reshape(*rois.shape)
    net.blobs[MASK_ROIS].data[...] = rois
    net.forward(start=net._layer_names[start])
    logits = net.blobs["mask_logits"].data
    for j, ((c, k), box) in enumerate(zip(which, boxes, strict=True)):
        prob = 1.0 / (1.0 + np.exp(-logits[j, c].astype(np.float64)))
        m = paste_mask(prob, box, height, width, threshold)
        masks[c][k] = encode(m) if encode else m
    return masks


def detections_per_class(scores: np.ndarray, boxes: np.ndarray,
                         test: AttrDict) -> list[np.ndarray]:
    """[c] -> (K, 5) [x1, y1, x2, y2, score] after the score threshold, per-class NMS and the
    per-image cap (test.MAX_PER_IMAGE over all classes). Index 0 (background) is empty."""
    num_classes = scores.shape[1]
    dets: list[np.ndarray] = [np.zeros((0, 5), np.float32)]
    for c in range(1, num_classes):
        keep = np.where(scores[:, c] > test.SCORE_THRESH)[0]
        d = np.hstack([boxes[keep, 4 * c:4 * c + 4], scores[keep, c:c + 1]]).astype(np.float32)
        dets.append(d[nms(d, test.NMS)])
    cap = test.MAX_PER_IMAGE
    all_scores = np.concatenate([d[:, 4] for d in dets[1:]])
    if cap > 0 and all_scores.size > cap:
        thresh = np.sort(all_scores)[-cap]
        dets = [dets[0]] + [d[d[:, 4] >= thresh] for d in dets[1:]]
    return dets
