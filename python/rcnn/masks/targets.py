"""Mask targets: each foreground RoI's matched ground-truth mask resampled into the RoI at
M x M and binarised, in the channel of the RoI's class (every other channel ignored).

The resampling is RoIAlign of the ground-truth bitmap as Detectron2 defines its mask targets
(`ROIAlign((M, M), 1.0, sampling_ratio=0, aligned=True)` on the bitmap, then >= 0.5; He et
al., "Mask R-CNN", 2017, section 3): half-pixel aligned, average of an adaptive grid of
ceil(bin size) x ceil(bin size) bilinear samples per output cell.

Coordinates: the roidb's boxes are inclusive pixel boxes (py-faster-rcnn's convention: x2 is
the last pixel), so the box [x1, x2] covers the continuous interval [x1, x2 + 1) of the
image; a mask cell (i, j) of M x M covers the same fraction of that interval whether the
mask is made (here) or pasted back (rcnn.masks.paste).
"""
from __future__ import annotations

import math

import numpy as np

IGNORE = -1.0   # the label of the pixels the loss ignores (SigmoidCrossEntropyLoss ignore_label)


def continuous_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive pixel boxes -> (N, 4) continuous [x1, y1, x2 + 1, y2 + 1]."""
    out = np.asarray(boxes, np.float64)[:, :4].copy()
    out[:, 2:] += 1.0
    return out


def _bilinear_weights(pos: np.ndarray, size: int):
    """For sample positions (pixel-index coordinates, centres at integers): the two taps,
    their weights, and which samples lie outside [-1, size] (they count as 0), by RoIAlign's
    border rule (Detectron / torchvision / onnxruntime)."""
    outside = (pos < -1.0) | (pos > size)
    p = np.clip(pos, 0.0, None)
    lo = np.floor(p).astype(np.int64)
    at_end = lo >= size - 1
    lo = np.where(at_end, size - 1, lo)
    hi = np.where(at_end, size - 1, lo + 1)
    p = np.where(at_end, lo.astype(np.float64), p)
    frac = p - lo
    return lo, hi, 1.0 - frac, frac, outside


def roi_align_bitmap(bitmap: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float64: the H x W bitmap averaged over each cell of the continuous box
    [x1, y1, x2, y2] (image pixels, pixel (i, j) covering [j, j + 1) x [i, i + 1)), with
    ceil(cell height) x ceil(cell width) bilinear samples per cell (at least 1), half-pixel
    aligned. The same numbers as RoIAlign(aligned=True, sampling_ratio=0, spatial_scale=1)."""
    h, w = bitmap.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    bin_w, bin_h = (x2 - x1) / size, (y2 - y1) / size
    nx, ny = max(math.ceil(bin_w), 1), max(math.ceil(bin_h), 1)
    # sample positions in pixel-index coordinates (a pixel's centre is at its index)
    xs = x1 - 0.5 + (np.arange(size)[:, None] + (np.arange(nx)[None, :] + 0.5) / nx) * bin_w
    ys = y1 - 0.5 + (np.arange(size)[:, None] + (np.arange(ny)[None, :] + 0.5) / ny) * bin_h
    xl, xh, wxl, wxh, xout = _bilinear_weights(xs.ravel(), w)
    yl, yh, wyl, wyh, yout = _bilinear_weights(ys.ravel(), h)
    img = bitmap.astype(np.float64)
    # (Y samples, X samples): the four taps of every sample
    v = (wyl[:, None] * (wxl[None, :] * img[yl[:, None], xl[None, :]]
                         + wxh[None, :] * img[yl[:, None], xh[None, :]])
         + wyh[:, None] * (wxl[None, :] * img[yh[:, None], xl[None, :]]
                           + wxh[None, :] * img[yh[:, None], xh[None, :]]))
    v[yout, :] = 0.0
    v[:, xout] = 0.0
    return v.reshape(size, ny, size, nx).mean(axis=(1, 3))


def mask_targets(boxes: np.ndarray, labels: np.ndarray, gt_masks: np.ndarray,
                 gt_index: np.ndarray, num_classes: int, size: int) -> np.ndarray:
    """(F, num_classes, size, size) float32 targets of F foreground RoIs.

    boxes: (F, 4) inclusive pixel boxes in the coordinates of gt_masks (the original image);
    labels: (F,) classes in 1..num_classes - 1; gt_masks: (G, H, W) ground-truth bitmaps
    (0 / 1; a mask whose first pixel is negative means "no mask": that RoI is ignored
    entirely); gt_index: (F,) the ground-truth object each RoI is matched to.
    Channel labels[f] holds the resampled mask binarised at 0.5; all other channels hold
    IGNORE. Raises ValueError on a label outside [1, num_classes) or an index outside
    [0, G)."""
    f = boxes.shape[0]
    out = np.full((f, num_classes, size, size), IGNORE, dtype=np.float32)
    if f == 0:
        return out
    labels = np.asarray(labels).astype(np.int64)
    gt_index = np.asarray(gt_index).astype(np.int64)
    if labels.min() < 1 or labels.max() >= num_classes:
        raise ValueError(f"mask targets: RoI labels must be in [1, {num_classes}), got "
                         f"{sorted(set(labels.tolist()))}")
    if gt_index.min() < 0 or gt_index.max() >= gt_masks.shape[0]:
        raise ValueError(f"mask targets: ground-truth index outside [0, {gt_masks.shape[0]})")
    cont = continuous_boxes(boxes)
    for k in range(f):
        m = gt_masks[gt_index[k]]
        if m.size and m.flat[0] < 0:
            continue   # an object without a mask: nothing to learn from this RoI
        out[k, labels[k]] = roi_align_bitmap(m, cont[k], size) >= 0.5
    return out


def foreground_mask_targets(rois: np.ndarray, labels: np.ndarray, gt_boxes: np.ndarray,
                            gt_masks: np.ndarray, scale: float, num_classes: int,
                            size: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask branch's training input from the detection head's sampled RoIs.

    rois: (R, 5) [batch, x1, y1, x2, y2] and gt_boxes: (G, 5) [x1, y1, x2, y2, class], both
    in the network's input image (scaled by `scale`); labels: (R,) the RoIs' classes (0 for
    background); gt_masks: (G, H, W) bitmaps of the original image. Each foreground RoI is
    matched to the ground truth box it overlaps most (the rule rcnn.roi_sampling labelled it
    by). Returns mask_rois (F, 5), the foreground RoIs as given, and their targets
    (F, num_classes, size, size) from mask_targets on the RoIs mapped back to the original
    image (divided by scale)."""
    from rcnn.boxes import bbox_overlaps

    labels = np.asarray(labels).ravel()
    fg = np.where(labels > 0)[0]
    mask_rois = np.asarray(rois, np.float32)[fg].reshape(-1, 5)
    if fg.size == 0:
        return mask_rois, np.full((0, num_classes, size, size), IGNORE, np.float32)
    if gt_boxes.shape[0] == 0:
        raise ValueError("mask targets: foreground RoIs but no ground-truth boxes")
    gt_index = bbox_overlaps(mask_rois[:, 1:5].astype(np.float64),
                             gt_boxes[:, :4].astype(np.float64)).argmax(axis=1)
    # the sampler labelled each RoI with its best-overlap box's class: the same box here
    wrong = np.where(gt_boxes[gt_index, 4] != labels[fg])[0]
    if wrong.size:
        raise ValueError(f"mask targets: RoI {fg[wrong[0]]} is labelled {labels[fg[wrong[0]]]} "
                         f"but overlaps most a box of class {gt_boxes[gt_index[wrong[0]], 4]}")
    boxes = mask_rois[:, 1:5].astype(np.float64) / scale
    return mask_rois, mask_targets(boxes, labels[fg], gt_masks, gt_index, num_classes, size)
