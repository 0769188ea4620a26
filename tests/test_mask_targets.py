"""Mask targets and mask pasting (rcnn.masks) against independent references: onnxruntime's
RoiAlign (half_pixel, adaptive sampling) on the ground-truth bitmap, scipy's
map_coordinates (linear, zero padding) for pasting, identities that fix the pixel convention
(a box of exactly M pixels: the target is the bitmap's crop, the paste is the mask itself),
and per-pixel loops written from the definitions (Detectron2's mask targets and
paste_masks_in_image)."""
import math

import numpy as np
import pytest
from rcnn.masks.paste import paste_mask
from rcnn.masks.targets import (
    IGNORE,
    foreground_mask_targets,
    mask_targets,
    roi_align_bitmap,
)


def _bilinear_reference(img, y, x):
    """RoIAlign's bilinear sample at (y, x), pixel-index coordinates, by its border rule."""
    h, w = img.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[y0, x0] + (1 - ly) * lx * img[y0, x1]
            + ly * (1 - lx) * img[y1, x0] + ly * lx * img[y1, x1])


def _target_reference(bitmap, box, m):
    """Detectron2's definition, one cell and one sample at a time: the inclusive box covers
    [x1, x2 + 1); RoIAlign aligned=True, sampling_ratio 0, then >= 0.5."""
    x1, y1, x2, y2 = box[0], box[1], box[2] + 1.0, box[3] + 1.0
    bw, bh = (x2 - x1) / m, (y2 - y1) / m
    nx, ny = max(math.ceil(bw), 1), max(math.ceil(bh), 1)
    out = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            acc = 0.0
            for a in range(ny):
                for b in range(nx):
                    y = y1 - 0.5 + i * bh + (a + 0.5) * bh / ny
                    x = x1 - 0.5 + j * bw + (b + 0.5) * bw / nx
                    acc += _bilinear_reference(bitmap, y, x)
            out[i, j] = acc / (nx * ny)
    return out >= 0.5


def _paste_reference(prob, box, h, w, thr=0.5):
    """Per image pixel: its centre mapped into the mask (align_corners=False), bilinear with
    zero padding, >= thr; only pixels the box's continuous extent touches."""
    m = prob.shape[0]
    x1, y1, x2, y2 = box[0], box[1], box[2] + 1.0, box[3] + 1.0
    out = np.zeros((h, w), np.uint8)

    def at(r, c):
        return prob[r, c] if 0 <= r < m and 0 <= c < m else 0.0
    for r in range(max(int(math.floor(y1)), 0), min(int(math.ceil(y2)), h)):
        for c in range(max(int(math.floor(x1)), 0), min(int(math.ceil(x2)), w)):
            u = (c + 0.5 - x1) / (x2 - x1) * m - 0.5
            v = (r + 0.5 - y1) / (y2 - y1) * m - 0.5
            u0, v0 = math.floor(u), math.floor(v)
            fu, fv = u - u0, v - v0
            val = ((1 - fv) * ((1 - fu) * at(v0, u0) + fu * at(v0, u0 + 1))
                   + fv * ((1 - fu) * at(v0 + 1, u0) + fu * at(v0 + 1, u0 + 1)))
            out[r, c] = val >= thr
    return out


def _ellipse(h, w, box):
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cx, cy, rx, ry = (x1 + x2 + 1) / 2, (y1 + y2 + 1) / 2, (x2 - x1 + 1) / 2, (y2 - y1 + 1) / 2
    return ((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_roi_align_bitmap_equals_onnxruntime(seed):
    from rcnn.roi_harness.onnx_reference import roi_align_op

    rng = np.random.default_rng(seed)
    h, w, m = 37, 45, 7 + seed
    bitmap = (rng.random((h, w)) > 0.5).astype(np.float32)
    xy = rng.uniform(-5, 50, (12, 2, 2))
    boxes = np.concatenate([xy.min(1), xy.max(1) + rng.uniform(0.5, 30, (12, 2))], 1)
    op = roi_align_op((1, 1, h, w), (m, m), 1.0, 0, half_pixel=True, threads=1)
    ref = op(bitmap[None, None], np.hstack([np.zeros((12, 1)), boxes]).astype(np.float32))
    ours = np.stack([roi_align_bitmap(bitmap, b, m) for b in boxes])
    np.testing.assert_allclose(ours, ref[:, 0], atol=1e-5)   # float32 there


def test_mask_targets_equal_the_definition():
    rng = np.random.default_rng(0)
    h, w, k, m = 40, 50, 4, 9
    gt = np.stack([_ellipse(h, w, (5, 4, 30, 25)), _ellipse(h, w, (20, 10, 46, 37)),
                   (rng.random((h, w)) > 0.5).astype(np.uint8)]).astype(np.float32)
    boxes = np.array([[4.0, 3.0, 31.0, 26.0], [18.5, 11.2, 40.3, 36.9], [0, 0, 49, 39],
                      [10.0, 10.0, 12.0, 11.0]])
    labels = np.array([1, 3, 2, 1])
    index = np.array([0, 1, 2, 2])
    out = mask_targets(boxes, labels, gt, index, k, m)
    assert out.shape == (4, k, m, m) and out.dtype == np.float32
    for f in range(4):
        ref = _target_reference(gt[index[f]], boxes[f], m)
        np.testing.assert_array_equal(out[f, labels[f]], ref.astype(np.float32))
        others = [c for c in range(k) if c != labels[f]]
        assert (out[f, others] == IGNORE).all()
    assert 0 < out[0, 1].mean() < 1   # an ellipse in its box: neither empty nor full


def test_a_box_filled_by_its_mask_gives_all_ones_and_a_circle_a_disc():
    gt = np.zeros((1, 60, 60), np.float32)
    gt[0, 10:30, 20:50] = 1             # pixels 20..49 x 10..29: the box [20, 10, 49, 29]
    out = mask_targets(np.array([[20.0, 10.0, 49.0, 29.0]]), np.array([1]), gt,
                       np.array([0]), 2, 28)
    assert (out[0, 1] == 1).all()
    circle = _ellipse(60, 60, (10, 10, 49, 49)).astype(np.float32)[None]
    out = mask_targets(np.array([[10.0, 10.0, 49.0, 49.0]]), np.array([1]), circle,
                       np.array([0]), 2, 28)
    # the disc inscribed in the 28 x 28 grid, up to the cells its boundary crosses
    inside, outside = _ellipse(28, 28, (1, 1, 26, 26)), _ellipse(28, 28, (-1, -1, 28, 28))
    assert (out[0, 1][inside == 1] == 1).all() and (out[0, 1][outside == 0] == 0).all()
    assert 0.7 < out[0, 1].mean() < 0.85      # pi / 4 of the square


def test_an_object_without_a_mask_is_ignored_and_zero_foreground_is_empty():
    gt = np.full((1, 20, 20), -1.0, np.float32)
    out = mask_targets(np.array([[2.0, 2.0, 10.0, 10.0]]), np.array([1]), gt, np.array([0]),
                       3, 14)
    assert (out == IGNORE).all()
    rois, targets = foreground_mask_targets(np.zeros((5, 5), np.float32), np.zeros(5),
                                            np.zeros((1, 5)), gt, 1.0, 3, 14)
    assert rois.shape == (0, 5) and targets.shape == (0, 3, 14, 14)


def test_foreground_targets_match_by_overlap_and_map_rois_back_to_the_original_image():
    h, w = 64, 64
    gt_masks = np.stack([_ellipse(h, w, (4, 4, 27, 27)),
                         _ellipse(h, w, (30, 34, 60, 60))]).astype(np.float32)
    scale = 1.5
    gt_boxes = np.array([[4, 4, 27, 27, 2], [30, 34, 60, 60, 1]], np.float32)
    gt_boxes[:, :4] *= scale
    rois = np.array([[0, 40, 45, 92, 91], [0, 3, 3, 40, 40], [0, 0, 0, 5, 5]], np.float32)
    rois[:, 1:] = np.round(rois[:, 1:])
    labels = np.array([1, 2, 0])
    mask_rois, targets = foreground_mask_targets(rois, labels, gt_boxes, gt_masks, scale, 3, 14)
    np.testing.assert_array_equal(mask_rois, rois[:2])
    np.testing.assert_array_equal(
        targets[0, 1], _target_reference(gt_masks[1], rois[0, 1:] / scale, 14))
    np.testing.assert_array_equal(
        targets[1, 2], _target_reference(gt_masks[0], rois[1, 1:] / scale, 14))


def test_mask_targets_reject_bad_labels():
    gt = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="labels"):
        mask_targets(np.array([[0.0, 0, 4, 4]]), np.array([3]), gt, np.array([0]), 3, 4)
    with pytest.raises(ValueError, match="index"):
        mask_targets(np.array([[0.0, 0, 4, 4]]), np.array([1]), gt, np.array([1]), 3, 4)


@pytest.mark.parametrize("box", [(10.0, 12.0, 40.0, 30.0), (3.3, 4.7, 21.9, 40.2),
                                 (-6.0, -3.0, 12.0, 9.0), (50.0, 40.0, 70.0, 60.0),
                                 (20.0, 20.0, 20.0, 20.0)])
def test_paste_equals_the_definition(box):
    rng = np.random.default_rng(1)
    prob = rng.random((28, 28))
    ours = paste_mask(prob, np.array(box), 48, 64)
    np.testing.assert_array_equal(ours, _paste_reference(prob, box, 48, 64))
    assert ours.shape == (48, 64) and ours.dtype == np.uint8


def test_paste_of_a_target_gives_the_mask_back():
    h, w = 80, 90
    gt = _ellipse(h, w, (12, 20, 61, 55))
    box = np.array([12.0, 20.0, 61.0, 55.0])
    target = mask_targets(box[None], np.array([1]), gt[None].astype(np.float32),
                          np.array([0]), 2, 28)[0, 1]
    back = paste_mask(target, box, h, w)
    iou = (back & gt).sum() / (back | gt).sum()
    assert iou > 0.95
    assert paste_mask(target, np.array([200.0, 200, 230, 230]), h, w).sum() == 0


def test_a_box_of_m_pixels_gives_the_crop_and_pastes_back_the_mask_itself():
    """Fixes the convention: the inclusive box [x1, x1 + M - 1] covers M pixels, each one
    cell of the M x M target; pasting puts cell (i, j) back on pixel (y1 + i, x1 + j)."""
    rng = np.random.default_rng(3)
    m = 12
    bitmap = (rng.random((40, 50)) > 0.5).astype(np.float32)
    box = np.array([17.0, 9.0, 17.0 + m - 1, 9.0 + m - 1])
    target = mask_targets(box[None], np.array([1]), bitmap[None], np.array([0]), 2, m)[0, 1]
    np.testing.assert_array_equal(target, bitmap[9:9 + m, 17:17 + m])
    prob = rng.random((m, m))
    pasted = paste_mask(prob, box, 40, 50)
    expected = np.zeros((40, 50), np.uint8)
    expected[9:9 + m, 17:17 + m] = prob >= 0.5
    np.testing.assert_array_equal(pasted, expected)


@pytest.mark.parametrize("seed", range(3))
def test_paste_equals_scipy_map_coordinates(seed):
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)
    h, w, m = 50, 70, 28
    prob = rng.random((m, m))
    for _ in range(20):
        x1, y1 = rng.uniform(-10, 60), rng.uniform(-10, 40)
        box = np.array([x1, y1, x1 + rng.uniform(0, 40), y1 + rng.uniform(0, 30)])
        x2, y2 = box[2] + 1, box[3] + 1
        rr, cc = np.mgrid[0:h, 0:w] + 0.5
        v = (rr - y1) / (y2 - y1) * m - 0.5
        u = (cc - x1) / (x2 - x1) * m - 0.5
        ref = map_coordinates(prob, [v, u], order=1, mode="grid-constant", cval=0.0) >= 0.5
        inside = (cc > np.floor(x1)) & (cc < np.ceil(x2)) & (rr > np.floor(y1)) & (rr < np.ceil(y2))
        np.testing.assert_array_equal(paste_mask(prob, box, h, w), ref & inside)


def test_foreground_targets_refuse_a_label_that_is_not_the_matched_box_class():
    gt_masks = np.zeros((1, 20, 20), np.float32)
    with pytest.raises(ValueError, match="labelled 2"):
        foreground_mask_targets(np.array([[0, 2, 2, 10, 10]], np.float32), np.array([2]),
                                np.array([[2, 2, 10, 10, 1]], np.float32), gt_masks, 1.0, 3, 7)
