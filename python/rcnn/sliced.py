"""Sliced inference for large images: SAHI, "Slicing Aided Hyper Inference" (Akyon, Altinuc
and Temizel, ICIP 2022, arXiv:2202.06934).

An image with a side over TEST.SLICE_SIZE pixels is cut into overlapping windows of at most
SLICE_SIZE x SLICE_SIZE image pixels (SLICE_OVERLAP: a fraction of SLICE_SIZE; the last
window of a row or column flush with the image border; no window larger than the image).
Each window goes through the net on its own, at native resolution (its own size: scale 1,
no resizing), so the net's input, and every float32 copy of the pixels, is one window at a
time; the image itself stays uint8. With TEST.SLICE_FULL_IMAGE the whole image is also run
the usual way (resized to TEST.SCALES / MAX_SIZE). Each window's detections (after
rcnn.inference.detections_per_class: score threshold, per-class NMS, the per-window cap
MAX_PER_IMAGE) are shifted by the window's offset into image coordinates and merged per
class, by SLICE_MERGE at IoU SLICE_MERGE_IOU:

- "nms": the best-scoring of overlapping detections of a class is kept, the others dropped;
- "greedy_nmm" (SAHI's greedy non-maximum merging): the best-scoring detection absorbs the
  others it overlaps: box = their union, score = their maximum, mask = their union;

then MAX_PER_IMAGE caps the image's detections, as for a whole image. A Mask R-CNN's masks
are made per window while the net holds that window's features (rcnn.inference.im_segment
on the window's detections, window coordinates), kept as the crop of their non-zero pixels
and pasted at the window's offset into image-sized masks only for the merged detections.

What comes from SAHI (pip sahi, its numpy post-processing backend; no torch needed):
sahi.slicing.get_slice_bboxes (the window grid) and sahi.postprocess.combine.nms /
greedy_nmm (which detections survive, and which merge into which). What does not, and why:

- SAHI's model interface (sahi.predict.get_sliced_prediction with a DetectionModel) and its
  ObjectPrediction-level merging (NMSPostprocess, GreedyNMMPostprocess) are not used. An
  ObjectPrediction holds one category and one score (fine here: the merge runs after
  detections_per_class, one class and score per detection), but its masks are COCO polygons
  (SAHI converts masks to polygons and merges them with shapely polygon unions): lossy for
  the pixel masks this package pastes and evaluates as RLE, and slow; and its per-detection
  Python objects add nothing over the arrays. Instead the merge of a group (SAHI's
  _apply_merge: each candidate re-checked against the growing merged box, box union, score
  maximum) is done here on the arrays, masks OR-ed pixel for pixel.
- Boxes here are inclusive pixel boxes (width = x2 - x1 + 1, as in Fast R-CNN); SAHI's
  overlap is computed on [x1, y1, x2, y2) boxes, so they are given to it as
  [x1, y1, x2 + 1, y2 + 1]: the IoU is this package's (rcnn.boxes.bbox_overlaps). A match is
  IoU >= SLICE_MERGE_IOU (SAHI's rule).
"""
from __future__ import annotations

import argparse
import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcnn.boxes import bbox_overlaps
from rcnn.config import AttrDict

log = logging.getLogger(__name__)

MERGES = ("nms", "greedy_nmm")

# A mask of one detection as the crop of its non-zero pixels: (x0, y0, (h, w) uint8 0 / 1)
# placed at column x0, row y0 of its frame (a window, or the image). An empty mask is
# (0, 0, a (0, 0) array).
MaskPiece = tuple[int, int, np.ndarray]


@dataclass
class Found:
    """Detections of one image or window: dets[c], (K_c, 5) float32 [x1, y1, x2, y2, score]
    of class c (inclusive pixel boxes; dets[0], background, empty); masks[c][k], the mask
    of dets[c][k] as a MaskPiece (None: not segmented, under the mask score threshold), or
    masks None for a detector without masks."""

    dets: list[np.ndarray]
    masks: list[list[MaskPiece | None]] | None = None


@dataclass
class SlicedResult:
    """detect_image's answer: the merged detections (image coordinates), how many windows
    ran, and whether the whole image ran too."""

    found: Found
    windows: int
    full_image: bool

    def describe(self, size: int) -> str:
        """How the image ran, for progress lines: "16 windows of 400 [+ the whole image]"."""
        return (f"{self.windows} windows of {size}"
                + (" + the whole image" if self.full_image else ""))


def check_slice_config(test: AttrDict) -> None:
    """ValueError, naming the key, for a TEST.SLICE_* value out of range: SLICE_SIZE < 0,
    SLICE_OVERLAP outside [0, 1), SLICE_MERGE not one of MERGES, SLICE_MERGE_IOU outside
    (0, 1]."""
    if int(test.SLICE_SIZE) < 0:
        raise ValueError(f"TEST.SLICE_SIZE must be >= 0 (0: off), got {test.SLICE_SIZE}")
    if not 0.0 <= float(test.SLICE_OVERLAP) < 1.0:
        raise ValueError(f"TEST.SLICE_OVERLAP must be in [0, 1), got {test.SLICE_OVERLAP}")
    if test.SLICE_MERGE not in MERGES:
        raise ValueError(f"TEST.SLICE_MERGE must be one of {', '.join(MERGES)}, got "
                         f"{test.SLICE_MERGE!r}")
    if not 0.0 < float(test.SLICE_MERGE_IOU) <= 1.0:
        raise ValueError(f"TEST.SLICE_MERGE_IOU must be in (0, 1], got {test.SLICE_MERGE_IOU}")


def needs_slicing(height: int, width: int, size: int) -> bool:
    """Whether an image of height x width pixels is sliced at SLICE_SIZE `size`: a side over
    size (size 0: never)."""
    return size > 0 and max(height, width) > size


def slice_windows(height: int, width: int, size: int, overlap: float) -> np.ndarray:
    """(N, 4) int64 windows [x0, y0, x1, y1) (image pixels, end exclusive) covering a
    height x width image, row by row: size x size (a side shorter where the image is),
    neighbours overlapping by int(overlap * size) pixels, the last window of a row or column
    flush with the image's border (overlapping its neighbour more). SAHI's
    sahi.slicing.get_slice_bboxes. ValueError for size < 1, overlap outside [0, 1) or an
    empty image."""
    from sahi.slicing import get_slice_bboxes

    if size < 1:
        raise ValueError(f"slice size must be >= 1, got {size}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"slice overlap must be in [0, 1), got {overlap}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot slice an empty image ({height} x {width})")
    boxes = get_slice_bboxes(height, width, size, size, False, overlap, overlap)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


def native_test(test: AttrDict, height: int, width: int) -> AttrDict:
    """A copy of the TEST section whose SCALES / MAX_SIZE make rcnn.blob.prep_image leave a
    height x width input as it is (scale 1): SCALES = (min side,), MAX_SIZE = max side."""
    t = copy.copy(test)
    t.SCALES = (min(height, width),)
    t.MAX_SIZE = max(height, width)
    return t


def crop_mask(mask: np.ndarray) -> MaskPiece:
    """An (H, W) 0 / 1 mask as the crop of its non-zero rows and columns."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, np.zeros((0, 0), np.uint8)
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return int(x0), int(y0), np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)


def paste_piece(piece: MaskPiece, height: int, width: int) -> np.ndarray:
    """The (height, width) uint8 0 / 1 mask of a MaskPiece in image coordinates (the part
    outside the image, if any, left out)."""
    out = np.zeros((height, width), np.uint8)
    x0, y0, m = piece
    h, w = m.shape
    if h and w and x0 < width and y0 < height:
        out[y0:y0 + h, x0:x0 + w] = m[:height - y0, :width - x0]
    return out


def _union_piece(a: MaskPiece, b: MaskPiece) -> MaskPiece:
    """The pixelwise OR of two MaskPieces of one frame."""
    if b[2].size == 0:
        return a
    if a[2].size == 0:
        return b
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1 = max(a[0] + a[2].shape[1], b[0] + b[2].shape[1])
    y1 = max(a[1] + a[2].shape[0], b[1] + b[2].shape[0])
    out = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for px, py, m in (a, b):
        out[py - y0:py - y0 + m.shape[0], px - x0:px - x0 + m.shape[1]] |= m
    return x0, y0, out


def shift(found: Found, dx: int, dy: int) -> Found:
    """found moved by (dx, dy) image pixels: a window's detections in image coordinates."""
    offset = np.array([dx, dy, dx, dy, 0], np.float32)
    dets = [d + offset for d in found.dets]
    masks = None
    if found.masks is not None:
        masks = [[None if p is None else (p[0] + dx, p[1] + dy, p[2]) for p in ms]
                 for ms in found.masks]
    return Found(dets, masks)


def _sahi_boxes(d: np.ndarray) -> np.ndarray:
    """(K, 5) detections -> SAHI's (K, 6) [x1, y1, x2, y2, score, category] with end-exclusive
    boxes (x2 + 1, y2 + 1; degenerate boxes, x2 < x1, as a barely trained net's can be, given
    zero width rather than a negative area)."""
    p = np.zeros((len(d), 6), np.float64)
    p[:, :5] = d[:, :5]
    p[:, 2] = np.maximum(p[:, 2] + 1, p[:, 0])
    p[:, 3] = np.maximum(p[:, 3] + 1, p[:, 1])
    return p


def merge_class(d: np.ndarray, masks: Sequence[MaskPiece | None] | None, method: str,
                iou: float) -> tuple[np.ndarray, list[MaskPiece | None] | None]:
    """Merges one class's detections from several windows (image coordinates): d (K, 5),
    masks aligned with d (or None). SAHI's nms / greedy_nmm decide the groups (a match: IoU
    >= iou); "nms" keeps each group's best, "greedy_nmm" merges each group into its best as
    SAHI's GreedyNMMPostprocess does (each candidate, in score order, re-checked against the
    merged box: union box, maximum score, OR of the masks). Returns (K', 5) float32 in
    decreasing score and the K' masks. ValueError for an unknown method."""
    from sahi.postprocess.backends import get_postprocess_backend, set_postprocess_backend
    from sahi.postprocess.combine import greedy_nmm, nms

    # SAHI's "auto" picks torchvision (IoU > thresh) or numba where installed: pin the numpy
    # backend (IoU >= thresh, the rule stated here) so results do not depend on the machine
    if get_postprocess_backend() != "numpy":
        set_postprocess_backend("numpy")
    if method not in MERGES:
        raise ValueError(f"unknown merge {method!r}: one of {', '.join(MERGES)}")
    if len(d) == 0:
        return d.astype(np.float32).reshape(0, 5), ([] if masks is not None else None)
    preds = _sahi_boxes(d)
    if method == "nms":
        groups: dict[int, list[int]] = {int(k): [] for k in nms(preds, "IOU", iou)}
    else:
        groups = {int(k): [int(j) for j in v]
                  for k, v in greedy_nmm(preds, "IOU", iou).items()}
    out = np.zeros((len(groups), 5), np.float64)
    out_masks: list[MaskPiece | None] | None = [] if masks is not None else None
    for row, (k, merged) in enumerate(groups.items()):
        box = d[k, :5].astype(np.float64)
        piece = masks[k] if masks is not None else None
        for j in merged:
            other = d[j, :5].astype(np.float64)
            if bbox_overlaps(box[None, :4], other[None, :4])[0, 0] >= iou:
                box[:2] = np.minimum(box[:2], other[:2])
                box[2:4] = np.maximum(box[2:4], other[2:4])
                box[4] = max(box[4], other[4])
                if masks is not None and masks[j] is not None:
                    piece = masks[j] if piece is None else _union_piece(piece, masks[j])
        out[row] = box
        if out_masks is not None:
            out_masks.append(piece)
    order = np.argsort(-out[:, 4], kind="stable")
    return (out[order].astype(np.float32),
            [out_masks[i] for i in order] if out_masks is not None else None)


def merge_detections(parts: Sequence[Found], method: str, iou: float,
                     max_per_image: int) -> Found:
    """The detections of several windows (and the whole image), all in image coordinates,
    merged per class by merge_class, then capped to the max_per_image best over all classes
    (0: no cap), as rcnn.inference.detections_per_class caps an image's. ValueError for no
    parts or parts with different class counts."""
    if not parts:
        raise ValueError("merge_detections: nothing to merge")
    num_classes = len(parts[0].dets)
    if any(len(p.dets) != num_classes for p in parts):
        raise ValueError("merge_detections: the parts have different class counts")
    with_masks = all(p.masks is not None for p in parts)
    dets: list[np.ndarray] = [np.zeros((0, 5), np.float32)]
    masks: list[list[MaskPiece | None]] | None = [[]] if with_masks else None
    for c in range(1, num_classes):
        d = np.concatenate([p.dets[c].reshape(-1, 5) for p in parts])
        ms = [m for p in parts for m in p.masks[c]] if with_masks else None
        merged, merged_masks = merge_class(d, ms, method, iou)
        dets.append(merged)
        if masks is not None:
            masks.append(merged_masks or [])
    all_scores = np.concatenate([d[:, 4] for d in dets[1:]]) if num_classes > 1 else []
    if max_per_image > 0 and len(all_scores) > max_per_image:
        thresh = np.sort(all_scores)[-max_per_image]
        keep = [d[:, 4] >= thresh for d in dets]
        dets = [d[k] for d, k in zip(dets, keep, strict=True)]
        if masks is not None:
            masks = [[m for m, ok in zip(ms, k, strict=True) if ok]
                     for ms, k in zip(masks, keep, strict=True)]
    return Found(dets, masks)


Detector = Callable[[np.ndarray], Found]


def sliced_detect(im: np.ndarray, detect: Detector, size: int, overlap: float, merge: str,
                  merge_iou: float, max_per_image: int, full_image: Detector | None = None,
                  on_window: Callable[[int, int], None] | None = None) -> tuple[Found, int]:
    """Runs detect on each window of im (slice_windows(H, W, size, overlap)), one at a time,
    each a contiguous (h, w, 3) copy of the window's pixels (never more than size x size);
    detect answers in window coordinates. With full_image, full_image(im) is run too (image
    coordinates). Shifts, merges (merge_detections) and returns the merged Found and the
    number of windows; on_window(done, total) after each window."""
    windows = slice_windows(im.shape[0], im.shape[1], size, overlap)
    parts = []
    for i, (x0, y0, x1, y1) in enumerate(windows):
        window = np.ascontiguousarray(im[y0:y1, x0:x1])
        parts.append(shift(detect(window), int(x0), int(y0)))
        if on_window is not None:
            on_window(i + 1, len(windows))
    if full_image is not None:
        parts.append(full_image(im))
    return merge_detections(parts, merge, merge_iou, max_per_image), len(windows)


def net_detector(net, test: AttrDict, means: np.ndarray, native: bool,
                 mask_score_thresh: float | None = None) -> Detector:
    """A Detector running a test net (rcnn.inference.im_detect, detections_per_class with
    `test`): native, at the input's own size (native_test: windows); else at TEST.SCALES /
    MAX_SIZE as usual (the whole image). With mask_score_thresh (a Mask R-CNN), the
    detections scoring at least it are segmented (im_segment, on the features of the input
    just run) and their masks kept as MaskPieces."""
    from rcnn.inference import detections_per_class, im_detect, im_segment

    def detect(im: np.ndarray) -> Found:
        h, w = im.shape[:2]
        dets = detections_per_class(
            *im_detect(net, im, native_test(test, h, w) if native else test, means), test)
        masks = None
        if mask_score_thresh is not None:
            masks = im_segment(net, dets, h, w, mask_score_thresh, encode=crop_mask)
        return Found(dets, masks)

    return detect


def detect_image(net, im: np.ndarray, test: AttrDict, means: np.ndarray,
                 mask_score_thresh: float | None = None, name: str = "") -> SlicedResult:
    """Sliced inference of one BGR uint8 image (H, W, 3) by the TEST section's SLICE_* keys
    (the caller decides to slice: needs_slicing). mask_score_thresh: segment the detections
    scoring at least it (a Mask R-CNN; None for none). Logs a progress line every tenth of
    the windows of an image of 50 windows or more. ValueError for bad SLICE_* values."""
    from rcnn.progress import Progress

    check_slice_config(test)
    progress = None

    def on_window(done: int, total: int) -> None:
        nonlocal progress
        if total < 50:
            return
        progress = progress or Progress(total)
        if done % max(total // 10, 1) == 0 or done == total:
            log.info("%s windows %s", name or "image", progress.line(done))

    full = (net_detector(net, test, means, False, mask_score_thresh)
            if test.SLICE_FULL_IMAGE else None)
    found, n = sliced_detect(im, net_detector(net, test, means, True, mask_score_thresh),
                             int(test.SLICE_SIZE), float(test.SLICE_OVERLAP), test.SLICE_MERGE,
                             float(test.SLICE_MERGE_IOU), int(test.MAX_PER_IMAGE), full,
                             on_window)
    return SlicedResult(found, n, bool(test.SLICE_FULL_IMAGE))


def full_masks(masks: list[list[MaskPiece | None]], height: int, width: int,
               encode: Callable[[np.ndarray], Any] | None = None) -> list[list[Any]]:
    """MaskPieces -> masks[c][k], (height, width) uint8 0 / 1 (or encode(mask), made as each
    is pasted so that one image-sized mask exists at a time), None kept, as im_segment
    gives them."""
    out: list[list[Any]] = []
    for ms in masks:
        row = []
        for p in ms:
            if p is None:
                row.append(None)
            else:
                m = paste_piece(p, height, width)
                row.append(encode(m) if encode else m)
        out.append(row)
    return out


class PastedMasks(Sequence[np.ndarray]):
    """One class's MaskPieces read as (height, width) uint8 0 / 1 masks, each pasted when it
    is read (a None piece: an empty mask), so that a picture of a large image
    (rcnn.plots.draw_detections) holds one image-sized mask at a time."""

    def __init__(self, pieces: Sequence[MaskPiece | None], height: int, width: int) -> None:
        self.pieces, self.height, self.width = list(pieces), height, width

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i):   # (Sequence's int / slice overloads)
        if isinstance(i, slice):
            return PastedMasks(self.pieces[i], self.height, self.width)
        p = self.pieces[i]
        return (np.zeros((self.height, self.width), np.uint8) if p is None
                else paste_piece(p, self.height, self.width))


def add_slice_args(ap: argparse.ArgumentParser) -> None:
    """The tools' sliced-inference flags (TEST.SLICE_*; not given: the config's value)."""
    g = ap.add_argument_group("sliced inference (large images; TEST.SLICE_* in the config)")
    g.add_argument("--slice", type=int, default=None, metavar="SIZE",
                   help="run images with a side over SIZE pixels as overlapping SIZE x SIZE "
                        "windows at native resolution, detections merged per class "
                        "(TEST.SLICE_SIZE; 0: off, the default)")
    g.add_argument("--slice-overlap", type=float, default=None, metavar="F",
                   help="overlap of neighbouring windows, a fraction of SIZE in [0, 1) "
                        "(TEST.SLICE_OVERLAP, default 0.25)")
    g.add_argument("--slice-full-image", action="store_true", default=None,
                   help="also run the whole image resized as usual and merge its detections "
                        "(TEST.SLICE_FULL_IMAGE)")
    g.add_argument("--slice-merge", choices=MERGES, default=None,
                   help="how detections of overlapping windows are merged: nms keeps the "
                        "best, greedy_nmm merges boxes and masks into it (TEST.SLICE_MERGE, "
                        "default nms)")
    g.add_argument("--slice-merge-iou", type=float, default=None, metavar="IOU",
                   help="IoU at which detections of one class are merged "
                        "(TEST.SLICE_MERGE_IOU, default 0.5)")


def apply_slice_args(config: AttrDict, args: argparse.Namespace) -> None:
    """The flags of add_slice_args written into config.TEST; ValueError for a bad value."""
    for flag, key, kind in (("slice", "SLICE_SIZE", int),
                            ("slice_overlap", "SLICE_OVERLAP", float),
                            ("slice_full_image", "SLICE_FULL_IMAGE", bool),
                            ("slice_merge", "SLICE_MERGE", str),
                            ("slice_merge_iou", "SLICE_MERGE_IOU", float)):
        value = getattr(args, flag, None)
        if value is not None:
            config.TEST[key] = kind(value)
    check_slice_config(config.TEST)
