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


def _box(roi, H, W, scale, alignment, pad_ratio):
    x1, y1, x2, y2 = (float(v) for v in roi[1:5])
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    if pad_ratio > 0:
        pw, ph = pad_ratio * (x2 - x1 + 1), pad_ratio * (y2 - y1 + 1)
        x1, y1 = max(x1 - pw, 0.0), max(y1 - ph, 0.0)
        x2 = min(x2 + pw, _round_half_away(W / scale) - 1)
        y2 = min(y2 + ph, _round_half_away(H / scale) - 1)
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


def _samples(roi, H, W, p):
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
    """Forward (R, C, ph, pw) and, given top_diff, the gradient w.r.t. x."""
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
