"""Independent numpy references for the RoI layers, written from the definitions in the issues
(float64, vectorised per RoI). Not derived from the C++ code."""
from __future__ import annotations

import math

import numpy as np

MAX_GRID = 1024


def _cubic(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t < 1, 1 - 2 * t**2 + t**3, np.where(t < 2, 4 - 8 * t + 5 * t**2 - t**3, 0.0))


def _taps(v: np.ndarray, size: int, bicubic: bool):
    """Indices (..., K), weights (..., K) and an inside mask for coordinates v."""
    inside = (v >= -1) & (v <= size)
    v = np.clip(np.where(inside, v, 0), 0, size - 1)
    lo = np.floor(v).astype(np.int64)
    frac = v - lo
    if bicubic:
        idx = np.stack([lo - 1, lo, lo + 1, lo + 2], axis=-1)
        w = np.stack([_cubic(1 + frac), _cubic(frac), _cubic(1 - frac), _cubic(2 - frac)], -1)
    else:
        idx = np.stack([lo, lo + 1], axis=-1)
        w = np.stack([1 - frac, frac], axis=-1)
    idx = np.clip(idx, 0, size - 1)
    w = w * inside[..., None]
    return idx, w, inside


def _grid(bin_size: float, sampling_ratio: int, multi: bool) -> int:
    if sampling_ratio == -1:
        return 2 if multi else 1
    if sampling_ratio > 0:
        return sampling_ratio
    g = math.ceil(bin_size)
    return int(min(max(g, 0), MAX_GRID))


def _padded(roi, H, W, scale, pad_ratio):
    """The box (x1, y1, x2, y2) in image coordinates after pad_ratio; None if not finite."""
    x1, y1, x2, y2 = (float(v) for v in roi[1:5])
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    if pad_ratio > 0:
        pw, ph = pad_ratio * (x2 - x1 + 1), pad_ratio * (y2 - y1 + 1)
        x1, y1 = max(x1 - pw, 0.0), max(y1 - ph, 0.0)
        x2 = min(x2 + pw, _round_half_away(W / scale) - 1)
        y2 = min(y2 + ph, _round_half_away(H / scale) - 1)
    return x1, y1, x2, y2


def _box(roi, H, W, scale, alignment, pad_ratio):
    box = _padded(roi, H, W, scale, pad_ratio)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    sw, sh = x1 * scale, y1 * scale
    if alignment == "CAFFE":
        rw, rh = max(x2 * scale - sw + 1, 1.0), max(y2 * scale - sh + 1, 1.0)
    elif alignment == "DETECTRON":
        rw, rh = max(x2 * scale - sw, 1.0), max(y2 * scale - sh, 1.0)
    else:  # HALF_PIXEL
        rw, rh = x2 * scale - sw, y2 * scale - sh
        sw, sh = sw - 0.5, sh - 0.5
    return sh, sw, rh, rw


def _round_half_away(v: float) -> float:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def _corner_taps(v: np.ndarray, size: int):
    """BIN_CORNERS taps: a sample is inside when 0 <= v < size; the low tap is
    min(floor(v), size - 2), so [size - 1, size) extrapolates; a map of size 1 uses its one
    row or column."""
    inside = (v >= 0) & (v < size)
    v = np.where(inside, v, 0.0)
    if size == 1:
        lo = np.zeros(v.shape, np.int64)
        idx = np.stack([lo, lo], axis=-1)
        w = np.stack([np.ones(v.shape), np.zeros(v.shape)], axis=-1)
    else:
        lo = np.minimum(np.floor(v).astype(np.int64), size - 2)
        frac = v - lo
        idx = np.stack([lo, lo + 1], axis=-1)
        w = np.stack([1 - frac, frac], axis=-1)
    return idx, w * inside[..., None], inside


def _corner_coords(start: float, size: float, pooled: int, grid: int) -> np.ndarray:
    """(pooled, grid) BIN_CORNERS sample coordinates: start + (p + j / (grid - 1)) * bin, or
    the bin's first corner alone when grid is 1."""
    bin_size = size / pooled
    frac = np.arange(grid) / (grid - 1) if grid > 1 else np.zeros(1)
    return start + (np.arange(pooled)[:, None] + frac[None, :]) * bin_size


def _corner_samples(roi, H, W, p):
    """faster-rcnn.pytorch's RoIAlignAvg / RoIAlignMax samples (alignment BIN_CORNERS)."""
    if p["sampling_ratio"] == 0 or p["bi_type"] != 0:
        raise ValueError("BIN_CORNERS: bilinear only, and no adaptive grid")
    s = p["spatial_scale"]
    box = _padded(roi, H, W, s, p["pad_ratio"])
    if box is None:
        return None
    x1, y1, x2, y2 = box
    sh, sw = y1 * s, x1 * s
    rh, rw = max(y2 * s - sh + 1, 0.0), max(x2 * s - sw + 1, 0.0)
    g = _grid(0.0, p["sampling_ratio"], p["is_multi_interpolate"])
    ys = _corner_coords(sh, rh, p["pooled_h"], g)
    xs = _corner_coords(sw, rw, p["pooled_w"], g)
    return _corner_taps(ys, H), _corner_taps(xs, W), g, g


def _samples(roi, H, W, p):
    if p["alignment"] == "BIN_CORNERS":
        return _corner_samples(roi, H, W, p)
    box = _box(roi, H, W, p["spatial_scale"], p["alignment"], p["pad_ratio"])
    if box is None:
        return None
    sh, sw, rh, rw = box
    bh, bw = rh / p["pooled_h"], rw / p["pooled_w"]
    gh = _grid(bh, p["sampling_ratio"], p["is_multi_interpolate"])
    gw = _grid(bw, p["sampling_ratio"], p["is_multi_interpolate"])
    ys = sh + np.arange(p["pooled_h"])[:, None] * bh + (np.arange(gh) + 0.5) * bh / max(gh, 1)
    xs = sw + np.arange(p["pooled_w"])[:, None] * bw + (np.arange(gw) + 0.5) * bw / max(gw, 1)
    bicubic = p["bi_type"] == 1
    return _taps(ys, H, bicubic), _taps(xs, W, bicubic), gh, gw


DEFAULTS = dict(spatial_scale=1.0, pad_ratio=0.0, bi_type=0, is_multi_interpolate=True,
                pool="MAX", sampling_ratio=-1, alignment="CAFFE")


def roi_align(x: np.ndarray, rois: np.ndarray, top_diff: np.ndarray | None = None, **params):
    """Forward (R, C, ph, pw) and, given top_diff, the gradient w.r.t. x. alignment CAFFE,
    DETECTRON, HALF_PIXEL or BIN_CORNERS (for CROP_AND_RESIZE see crop_and_resize_tf)."""
    p = {**DEFAULTS, **params}
    N, C, H, W = x.shape
    x = x.astype(np.float64)
    R = rois.shape[0]
    out = np.zeros((R, C, p["pooled_h"], p["pooled_w"]))
    grad = np.zeros_like(x)
    for r in range(R):
        s = _samples(rois[r], H, W, p)
        if s is None:
            continue
        (iy, wy, _), (ix, wx, _), gh, gw = s
        if gh * gw == 0:
            continue
        b = int(rois[r, 0])
        feat = x[b]
        # (C, ph, gh, K, pw, gw, L)
        g = feat[:, iy[:, :, :, None, None, None], ix[None, None, None, :, :, :]]
        vals = np.einsum("cabkdel,abk,del->cabde", g, wy, wx)  # (C, ph, gh, pw, gw)
        vals = vals.transpose(0, 1, 3, 2, 4).reshape(C, p["pooled_h"], p["pooled_w"], gh * gw)
        if p["pool"] == "AVE":
            out[r] = vals.sum(-1) / max(gh * gw, 1)
        else:
            arg = vals.argmax(-1)
            out[r] = np.take_along_axis(vals, arg[..., None], -1)[..., 0]
        if top_diff is None:
            continue
        td = top_diff[r].astype(np.float64)  # (C, ph, pw)
        if p["pool"] == "AVE":
            sample_g = np.broadcast_to(td[..., None] / max(gh * gw, 1), vals.shape)
        else:
            sample_g = np.zeros(vals.shape)
            np.put_along_axis(sample_g, arg[..., None], td[..., None], -1)
        sample_g = sample_g.reshape(C, p["pooled_h"], p["pooled_w"], gh, gw)
        sample_g = sample_g.transpose(0, 1, 3, 2, 4)
        # Scatter: (C, ph, gh, K, pw, gw, L)
        contrib = np.einsum("cabde,abk,del->cabkdel", sample_g, wy, wx)
        yy = np.broadcast_to(iy[:, :, :, None, None, None], contrib.shape[1:])
        xx = np.broadcast_to(ix[None, None, None, :, :, :], contrib.shape[1:])
        for c in range(C):
            np.add.at(grad[b, c], (yy, xx), contrib[c])
    return out, grad


def roi_pool(x: np.ndarray, rois: np.ndarray, pooled_h: int, pooled_w: int,
             spatial_scale: float):
    """Fast R-CNN RoI max pooling: forward only."""
    N, C, H, W = x.shape
    out = np.zeros((rois.shape[0], C, pooled_h, pooled_w), dtype=np.float64)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (_round_half_away(float(v) * spatial_scale) for v in roi[1:5])
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bh, bw = rh / pooled_h, rw / pooled_w
        for ph in range(pooled_h):
            hs = min(max(math.floor(ph * bh) + y1, 0), H)
            he = min(max(math.ceil((ph + 1) * bh) + y1, 0), H)
            for pw in range(pooled_w):
                ws = min(max(math.floor(pw * bw) + x1, 0), W)
                we = min(max(math.ceil((pw + 1) * bw) + x1, 0), W)
                if he > hs and we > ws:
                    out[r, :, ph, pw] = x[b, :, hs:he, ws:we].max(axis=(1, 2))
    return out


# --- faster-rcnn.pytorch's RoIAlignAvg / RoIAlignMax, in its own two steps ------------------


def _pytorch_point(plane: np.ndarray, y: float, x: float) -> float:
    """One point of faster-rcnn.pytorch's RoIAlign: 0 outside [0, H) x [0, W); otherwise
    bilinear from the neighbour at min(floor, size - 2) (its one row on a map of height 1)."""
    H, W = plane.shape
    if y < 0 or y >= H or x < 0 or x >= W:
        return 0.0
    hs = 0 if H == 1 else min(math.floor(y), H - 2)
    ws = 0 if W == 1 else min(math.floor(x), W - 2)
    hr, wr = (0.0 if H == 1 else y - hs), (0.0 if W == 1 else x - ws)
    he, we = min(hs + 1, H - 1), min(ws + 1, W - 1)
    return ((1 - hr) * (1 - wr) * plane[hs, ws] + (1 - hr) * wr * plane[hs, we]
            + hr * (1 - wr) * plane[he, ws] + hr * wr * plane[he, we])


def bin_corners_two_step(x: np.ndarray, rois: np.ndarray, pooled_h: int, pooled_w: int,
                         spatial_scale: float, pool: str) -> np.ndarray:
    """RoIAlignAvg / RoIAlignMax as faster-rcnn.pytorch composes them: its RoIAlign on a
    (pooled + 1)^2 grid of points from the box start in steps of size / pooled (size =
    max(x2*s - x1*s + 1, 0)), then 2 x 2 stride-1 average or max pooling. Forward only; equals
    roi_align(alignment="BIN_CORNERS") with a 2 x 2 grid."""
    N, C, H, W = x.shape
    x = x.astype(np.float64)
    out = np.zeros((len(rois), C, pooled_h, pooled_w))
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (float(v) * spatial_scale for v in roi[1:5])
        bin_h, bin_w = max(y2 - y1 + 1, 0.0) / pooled_h, max(x2 - x1 + 1, 0.0) / pooled_w
        points = np.array([[[_pytorch_point(x[b, c], y1 + i * bin_h, x1 + j * bin_w)
                             for j in range(pooled_w + 1)] for i in range(pooled_h + 1)]
                           for c in range(C)])
        windows = np.stack([points[:, :-1, :-1], points[:, :-1, 1:], points[:, 1:, :-1],
                            points[:, 1:, 1:]], axis=-1)
        out[r] = windows.mean(-1) if pool == "AVE" else windows.max(-1)
    return out


# --- tf.image.crop_and_resize, TensorFlow's arithmetic ------------------------------------


def _tf_axis(c1: float, c2: float, size: int, crop: int) -> np.ndarray:
    """CropAndResize's input coordinates along one axis for normalised box ends c1, c2."""
    if crop > 1:
        scale = (c2 - c1) * (size - 1) / (crop - 1)
        return c1 * (size - 1) + np.arange(crop) * scale
    return np.full(1, 0.5 * (c1 + c2) * (size - 1))


def crop_and_resize_tf(x: np.ndarray, rois: np.ndarray, pooled_h: int, pooled_w: int,
                       spatial_scale: float, top_diff: np.ndarray | None = None):
    """tf.image.crop_and_resize(method="bilinear", extrapolation_value=0) on boxes normalised
    as TensorFlow takes them, (y1*s/(H-1), x1*s/(W-1), y2*s/(H-1), x2*s/(W-1)), following
    its CPU kernel's arithmetic (top/bottom = floor/ceil, lerps) and, given top_diff, its
    gradient w.r.t. the image. Maps of height and width > 1 only (TensorFlow divides by
    H - 1)."""
    N, C, H, W = x.shape
    if H < 2 or W < 2:
        raise ValueError("crop_and_resize_tf needs H, W > 1")
    x = x.astype(np.float64)
    out = np.zeros((len(rois), C, pooled_h, pooled_w))
    grad = np.zeros_like(x)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (float(v) * spatial_scale for v in roi[1:5])
        in_y = _tf_axis(y1 / (H - 1), y2 / (H - 1), H, pooled_h)
        in_x = _tf_axis(x1 / (W - 1), x2 / (W - 1), W, pooled_w)
        for py, yy in enumerate(in_y):
            if not 0 <= yy <= H - 1:
                continue
            top, bottom = math.floor(yy), math.ceil(yy)
            y_lerp = yy - top
            for px, xx in enumerate(in_x):
                if not 0 <= xx <= W - 1:
                    continue
                left, right = math.floor(xx), math.ceil(xx)
                x_lerp = xx - left
                tl, tr = x[b, :, top, left], x[b, :, top, right]
                bl, br = x[b, :, bottom, left], x[b, :, bottom, right]
                upper = tl + (tr - tl) * x_lerp
                lower = bl + (br - bl) * x_lerp
                out[r, :, py, px] = upper + (lower - upper) * y_lerp
                if top_diff is None:
                    continue
                g = top_diff[r, :, py, px].astype(np.float64)
                d_top, d_bottom = (1 - y_lerp) * g, y_lerp * g
                grad[b, :, top, left] += (1 - x_lerp) * d_top
                grad[b, :, top, right] += x_lerp * d_top
                grad[b, :, bottom, left] += (1 - x_lerp) * d_bottom
                grad[b, :, bottom, right] += x_lerp * d_bottom
    return out, grad


def sample_coords(rois: np.ndarray, pooled: int, spatial_scale: float, alignment: str,
                  grid: int, axis: str) -> np.ndarray:
    """(R, pooled, grid) sample coordinates along one axis ("y" or "x") for BIN_CORNERS or
    CROP_AND_RESIZE (grid 1), from the definitions: used to find samples that lie within
    float32 rounding of the edge of the valid range, where inside / outside is a coin toss."""
    lo_col, hi_col = (2, 4) if axis == "y" else (1, 3)
    out = np.zeros((len(rois), pooled, grid))
    for r, roi in enumerate(rois.astype(np.float64)):
        c1, c2 = roi[lo_col] * spatial_scale, roi[hi_col] * spatial_scale
        if alignment == "BIN_CORNERS":
            out[r] = _corner_coords(c1, max(c2 - c1 + 1, 0.0), pooled, grid)
        elif pooled > 1:
            out[r] = (c1 + np.arange(pooled) * (c2 - c1) / (pooled - 1))[:, None]
        else:
            out[r] = 0.5 * (c1 + c2)
    return out


def near_edges(coords: np.ndarray, edges: tuple[float, ...], tol: float = 1e-4) -> np.ndarray:
    """(R, pooled): whether any sample of a bin lies within tol (relative to 1 + |v|) of an
    edge, other than exactly on 0 (a box clipped to the image starts there exactly)."""
    near = np.zeros(coords.shape, bool)
    for e in edges:
        d = np.abs(coords - e)
        near |= (d < tol * (1 + np.abs(coords))) & ~((coords == 0) & (e == 0))
    return near.any(-1)


def edge_outputs(rois: np.ndarray, pooled: tuple[int, int], spatial_scale: float,
                 alignment: str, grid: int, size: tuple[int, int],
                 pad_ratio: float = 0.0) -> np.ndarray:
    """(R, 1, ph, pw): the outputs with a sample within float32 rounding of the valid range's
    edge (BIN_CORNERS: 0 and H; CROP_AND_RESIZE: 0 and H - 1; x likewise)."""
    last = 0 if alignment == "BIN_CORNERS" else 1
    if pad_ratio > 0:
        padded = [_padded(r, *size, spatial_scale, pad_ratio) for r in rois]
        rois = np.array([[r[0], *(b if b is not None else (np.nan,) * 4)]
                         for r, b in zip(rois, padded, strict=True)])
    near = [near_edges(sample_coords(rois, p, spatial_scale, alignment, grid, axis),
                       (0.0, float(s - last)))
            for p, axis, s in zip(pooled, "yx", size, strict=True)]
    return (near[0][:, :, None] | near[1][:, None, :])[:, None]


# --- PyramidROIAlign's level rules ---------------------------------------------------------


def _c_round(v: np.ndarray) -> np.ndarray:
    """C's round: half away from zero (numpy's np.round is half to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def pyramid_levels(rois: np.ndarray, num_levels: int, rule: str = "FLOOR", first_level: int = 2,
                   canonical_size: float = 224, canonical_level: int = 4,
                   finest_scale: float = 56) -> np.ndarray:
    """(R,) level index (0 = the first, finest feature bottom) of each RoI, in float64 from
    the float32 boxes: FLOOR floor(k0 + log2(sqrt(w*h)/s0 + 1e-6)), w = x2 - x1;
    FLOOR_PLUS_ONE the same with w + 1, h + 1; ROUND k0 + round(log2(sqrt(w*h)/s0));
    FINEST_SCALE first_level + floor(log2(sqrt(w*h)/finest_scale + 1e-6)); then minus
    first_level, clamped to [0, num_levels - 1], NaN to 0."""
    r = rois.astype(np.float64)
    w, h = r[:, 3] - r[:, 1], r[:, 4] - r[:, 2]
    if rule == "FLOOR_PLUS_ONE":
        w, h = w + 1, h + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.sqrt(w * h)
        if rule == "ROUND":
            level = canonical_level + _c_round(np.log2(size / canonical_size))
        elif rule == "FINEST_SCALE":
            level = first_level + np.floor(np.log2(size / finest_scale + 1e-6))
        else:
            level = np.floor(canonical_level + np.log2(size / canonical_size + 1e-6))
    index = level - first_level
    index = np.where(np.isnan(index), 0, index)
    return np.clip(index, 0, num_levels - 1).astype(np.int64)
