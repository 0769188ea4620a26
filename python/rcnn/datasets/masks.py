"""Instance masks in the roidb: a lazy description per object, decoded per minibatch (never a
full-resolution bitmap per instance held for the whole roidb). All encoding, decoding and
polygon rasterising is pycocotools.mask's.

entry["segms"] (present for datasets with masks, aligned with entry["boxes"],
entry["gt_classes"], one item per object) holds, for each object:
- COCO polygons: a list of [x1, y1, x2, y2, ...] lists (each of 3 points or more);
- a COCO RLE dict {"size": [H, W], "counts": [...]} (uncompressed) or {"size": [H, W],
  "counts": str} (compressed), of the image's size;
- an instance PNG reference {"png": path, "instance": k}: the object is the pixels of value k
  in a VOC SegmentationObject PNG (an index image: palette or grey, 0 background, 255 the
  void border, which belongs to no object); with "objects": n, the number of objects in the
  annotation (values above n have no object), and "orientation": o when the PNG was drawn on
  the stored pixels of an image shown turned by EXIF orientation o (the PNG is turned the same
  way, as ImageOps.exif_transpose turns the image);
- None: the object has no mask (its box is still trained on and evaluated).
Flipped entries (entry["flipped"]) keep the segms of their original: instance_masks flips the
decoded masks.

Pixel convention: a mask is H x W (entry["height"] x entry["width"], the image as
read_image_bgr gives it); mask pixel (r, c) is the unit square [c, c + 1) x [r, r + 1) of the
image, the pixel the roidb's inclusive boxes count: a mask whose pixels span columns x1..x2
and rows y1..y2 has the box [x1, y1, x2, y2] (continuous extent [x1, x2 + 1) x [y1, y2 + 1)).
COCO polygons are in the same continuous coordinates (pycocotools rasterises them).

Bad masks (a one-line warning naming the file and the instance; the mask dropped, the box
kept, training goes on): checked when the roidb is built where that is cheap (a polygon of
fewer than 3 points, an odd number of coordinates, non-numbers, NaN or coordinates far
outside the image: that polygon left out; an RLE or instance PNG of another size than the
image's; an RLE whose counts do not add up to its size), and at decode time where only
decoding can tell (an empty mask, a mask mostly outside its box, a compressed RLE that does
not decode, PNG instance values without an object). A decode-time drop sets
entry["segms"][i] to None in place, and is warned about once per instance (not every epoch).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rcnn.datasets.errors import DatasetError

log = logging.getLogger(__name__)

# A mask is "far outside its box" when less than this fraction of its pixels lie in the box
# grown by FAR_MARGIN of its width / height (at least FAR_MIN_PIXELS) on every side.
FAR_INSIDE = 0.5
FAR_MARGIN = 0.1
FAR_MIN_PIXELS = 2
VOID = 255                     # the VOC border value in instance / class PNGs
INDEX_MODES = ("P", "L", "I;16", "I;16L", "I;16B", "I;16N", "I")

_dropped: dict[str, str] = {}   # instance name -> why its mask was dropped (decode time)
_warned: set[str] = set()       # other decode-time warnings given (once each)


def _mask_util():
    from pycocotools import mask as mask_util

    return mask_util


# ---------------------------------------------------------------- queries and encoding

def has_masks(entry: dict[str, Any]) -> bool:
    """Whether any object of the entry has a mask (entry["segms"][i] is not None for some i).
    Objects without one get an all-zero mask from instance_masks; segms[i] is None tells
    them apart."""
    segms = entry.get("segms")
    return bool(segms) and any(s is not None for s in segms)


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) 0 / 1 mask -> COCO compressed RLE {"size": [H, W], "counts": str}, ready for
    JSON and COCOeval (pycocotools.mask.encode)."""
    rle = _mask_util().encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area(rle: dict[str, Any]) -> int:
    """The number of pixels of a compressed RLE (pycocotools.mask.area)."""
    return int(_mask_util().area(_compressed(rle)))


def _compressed(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


# ---------------------------------------------------------------- roidb-time checks

def is_png_ref(segm: Any) -> bool:
    return isinstance(segm, dict) and "png" in segm


def coco_segm(segm: Any, height: int, width: int, where: str) -> Any:
    """A COCO annotation's `segmentation` checked against its H x W image: the description to
    keep in the roidb (the JSON's own objects, not copies), or None (no mask: a missing or
    empty segmentation silently, a bad one with a warning naming `where`)."""
    if segm is None or (isinstance(segm, list | dict) and len(segm) == 0):
        return None
    if isinstance(segm, list):
        return _polygons(segm, height, width, where)
    if isinstance(segm, dict):
        return _rle(segm, height, width, where)
    log.warning("%s: segmentation is a %s, not polygons or RLE: no mask (box kept)", where,
                type(segm).__name__)
    return None


def _polygon_problem(poly: Any, j: int, side: int) -> str | None:
    """What is wrong with polygon j (None: nothing). Checked before pycocotools sees it: a
    polygon of 2 points would be taken for a box, NaN or huge coordinates take it minutes."""
    if not isinstance(poly, list):
        return f"polygon {j} is not a list of numbers"
    if len(poly) % 2:
        return f"polygon {j} has an odd number of coordinates ({len(poly)})"
    if len(poly) < 6:
        n = len(poly) // 2
        return f"polygon {j} has {n} point{'s' * (n != 1)} (fewer than 3)"
    try:
        total, lo, hi = sum(poly), min(poly), max(poly)
        finite = math.isfinite(total)
    except TypeError:
        return f"polygon {j} is not a list of numbers"
    if not finite:
        return f"polygon {j} has NaN or infinite coordinates"
    if lo < -side or hi > 2 * side:
        return f"polygon {j} has coordinates far outside the image (from {lo:g} to {hi:g})"
    return None


def _polygons(polys: list, height: int, width: int, where: str) -> list | None:
    if not isinstance(polys[0], list):                # one flat polygon
        polys = [polys]
    side = max(height, width)
    problems = [(poly, _polygon_problem(poly, j, side)) for j, poly in enumerate(polys, 1)]
    bad = [why for _, why in problems if why]
    if not bad:
        return polys
    kept = [poly for poly, why in problems if why is None]
    rest = (f"{len(kept)} polygon{'s' * (len(kept) != 1)} kept" if kept
            else "no polygon left: no mask (box kept)")
    log.warning("%s: %s: left out; %s", where, "; ".join(bad), rest)
    return kept or None


def _rle(rle: dict, height: int, width: int, where: str) -> dict | None:
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, list | tuple) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        log.warning("%s: RLE has size %r, not [height, width]: no mask (box kept)", where, size)
        return None
    if [int(size[0]), int(size[1])] != [height, width]:
        log.warning("%s: RLE is %d x %d (width x height) but the image is %d x %d: no mask "
                    "(box kept)", where, size[1], size[0], width, height)
        return None
    if isinstance(counts, list):
        try:
            values = np.asarray(counts) if counts else np.zeros(0, np.int64)
        except (ValueError, TypeError):             # ragged nested lists
            values = np.zeros((0, 0))
        if values.ndim != 1 or values.dtype.kind not in "iu" or (values < 0).any():
            log.warning("%s: RLE counts are not all non-negative integers: no mask (box kept)",
                        where)
            return None
        total = int(values.sum())
        if total != height * width:
            log.warning("%s: RLE counts add up to %d, not %d x %d = %d: no mask (box kept)",
                        where, total, width, height, width * height)
            return None
        return {"size": [height, width], "counts": counts}
    if isinstance(counts, str | bytes) and counts:
        return {"size": [height, width], "counts": counts}
    log.warning("%s: RLE counts are %s, not a list or a string: no mask (box kept)", where,
                type(counts).__name__)
    return None


def png_header(path: Path) -> tuple[tuple[int, int], str]:
    """((width, height), mode) of an index PNG; a DatasetError for an unreadable file or one
    that is not an index image (palette or grey)."""
    try:
        with Image.open(path) as im:
            size, mode = (int(im.size[0]), int(im.size[1])), im.mode
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None
    if mode not in INDEX_MODES:
        raise DatasetError(f"{path}: a {mode} image, not an index PNG (palette or grey, one "
                           "value per instance or class)")
    return size, mode


def read_index_png(path: str | Path, orientation: int = 1) -> np.ndarray:
    """An index PNG's values (H x W ints: palette indices, not colours), turned by EXIF
    orientation `orientation` as ImageOps.exif_transpose turns an image."""
    from rcnn.datasets.images import ORIENTATION_METHODS

    try:
        with Image.open(path) as im:
            if im.mode not in INDEX_MODES:
                raise DatasetError(f"{path}: a {im.mode} image, not an index PNG (palette or "
                                   "grey)")
            im.load()
            if orientation in ORIENTATION_METHODS:
                im = im.transpose(ORIENTATION_METHODS[orientation])
            return np.asarray(im).astype(np.int64)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None


# ---------------------------------------------------------------- decoding

def _name(entry: dict[str, Any], i: int) -> str:
    """The file and instance an object's mask comes from, for messages."""
    segm = entry["segms"][i]
    if is_png_ref(segm):
        return f"{segm['png']}: instance {segm['instance']}"
    ids = entry.get("object_ids")
    source = entry.get("source", entry.get("image", "?"))
    if ids is not None and "id" in entry:
        return f"{source}: annotation {int(ids[i])}"
    return f"{source}: object {int(ids[i]) if ids is not None else i + 1}"


def decode_segm(segm: Any, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 0 / 1 mask of a polygon list or an RLE dict (not an instance PNG). A
    ValueError for an RLE that does not decode to H x W 0 / 1 pixels."""
    mask_util = _mask_util()
    try:
        if isinstance(segm, list):
            rle = mask_util.merge(mask_util.frPyObjects(segm, height, width))
        elif isinstance(segm.get("counts"), list):
            rle = mask_util.frPyObjects(segm, height, width)
        else:
            rle = _compressed(segm)
    except Exception as e:       # pycocotools raises bare Exceptions for what it cannot read
        raise ValueError(f"pycocotools cannot read the segmentation ({e})") from None
    if [int(v) for v in rle["size"]] != [height, width]:
        raise ValueError(f"the RLE is {rle['size'][1]} x {rle['size'][0]}, not {width} x "
                         f"{height}")
    try:
        mask = mask_util.decode(rle)
    except (ValueError, TypeError) as e:     # counts beyond H x W, malformed string
        raise ValueError(f"the RLE does not decode ({e})") from None
    # counts that fall short of H x W leave pixels pycocotools did not write
    if mask.max(initial=0) > 1 or int(mask.sum()) != int(mask_util.area(rle)):
        raise ValueError(f"the RLE's counts do not cover its {width} x {height} pixels")
    return mask


def _far_outside(mask: np.ndarray, box: np.ndarray) -> float | None:
    """The fraction of the mask's pixels inside its box grown by the margin, when that is
    under FAR_INSIDE (else None)."""
    area = int(mask.sum())
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    mx = max(FAR_MIN_PIXELS, FAR_MARGIN * (x2 - x1 + 1))
    my = max(FAR_MIN_PIXELS, FAR_MARGIN * (y2 - y1 + 1))
    r0, r1 = max(0, math.floor(y1 - my)), max(0, math.ceil(y2 + my) + 1)
    c0, c1 = max(0, math.floor(x1 - mx)), max(0, math.ceil(x2 + mx) + 1)
    inside = int(mask[r0:r1, c0:c1].sum()) / area
    return inside if inside < FAR_INSIDE else None


def _identified(entry: dict[str, Any], segm: Any) -> bool:
    """Whether the instance's name identifies it for the whole process (a PNG and its value,
    or a reader's source file and annotation id), so a decision about it can be remembered;
    hand-made entries (no "source" / "object_ids") are checked each time, warned once."""
    return is_png_ref(segm) or ("source" in entry and entry.get("object_ids") is not None)


def _drop(entry: dict[str, Any], i: int, name: str, why: str) -> None:
    if _identified(entry, entry["segms"][i]):
        _dropped[name] = why
    _warn_once(f"{name}: {why}", f"{name}: {why}: no mask (box kept)")
    entry["segms"][i] = None


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


def instance_masks(entry: dict[str, Any],
                   region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(G, H, W) uint8 0 / 1 masks of the entry's G objects, in entry["boxes"] order, H x W the
    image as read_image_bgr shows it (entry["height"], entry["width"]); decoded now, flipped
    left-right for a flipped entry. With region (x0, y0, x1, y1; image pixels, end exclusive)
    only that part of each mask is kept, (G, y1 - y0, x1 - x0): one full-size mask at a time
    is held, not G (a training window of a large image). An object without a mask (segms[i]
    None, or no "segms") gets an all-zero mask. Decode-time checks (empty, mostly outside its
    box, an RLE that does not decode) drop a mask: a warning once per instance, segms[i] set
    to None in place."""
    boxes = np.asarray(entry["boxes"]).reshape(-1, 4)
    g, h, w = len(boxes), int(entry["height"]), int(entry["width"])
    x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
    masks = np.zeros((g, y1 - y0, x1 - x0), dtype=np.uint8)
    segms = entry.get("segms")
    if not segms:
        return masks
    if len(segms) != g:
        raise ValueError(f"{entry.get('image')}: {len(segms)} segms for {g} boxes")
    pngs: dict[tuple[str, int], np.ndarray] = {}
    for i, segm in enumerate(segms):
        if segm is None:
            continue
        name = _name(entry, i)
        if name in _dropped and _identified(entry, segm):
            entry["segms"][i] = None
            continue
        if is_png_ref(segm):
            key = (str(segm["png"]), int(segm.get("orientation", 1)))
            if key not in pngs:
                pngs[key] = read_index_png(*key)
                _check_png_instances(segm, pngs[key], entry.get("source", "its annotation"))
            values = pngs[key]
            if values.shape != (h, w):
                _drop(entry, i, name, f"the instance PNG is {values.shape[1]} x "
                                      f"{values.shape[0]}, not {w} x {h} like the image")
                continue
            mask = (values == int(segm["instance"])).astype(np.uint8)
        else:
            try:
                mask = decode_segm(segm, h, w)
            except ValueError as e:
                _drop(entry, i, name, str(e))
                continue
        if entry.get("flipped"):
            mask = mask[:, ::-1]
        if not mask.any():
            _drop(entry, i, name, "the mask is empty")
            continue
        inside = _far_outside(mask, boxes[i])
        if inside is not None:
            box = [round(float(v), 1) for v in boxes[i]]
            _drop(entry, i, name, f"only {inside:.0%} of the mask's {int(mask.sum())} pixels "
                                  f"lie in or near its box {box}"
                                  + (" (of the flipped image)" if entry.get("flipped") else ""))
            continue
        masks[i] = mask[y0:y1, x0:x1]
    return masks


def _check_png_instances(segm: dict[str, Any], values: np.ndarray, source: str) -> None:
    """PNG instance values beyond the annotation's objects (segm["objects"]: an instance
    index with no class): a warning once per PNG; those pixels are not used."""
    count, png = segm.get("objects"), str(segm["png"])
    key = f"{png}: extra instances"
    if count is None or key in _warned or values.max(initial=0) <= count:
        return
    extra = [v for v in np.unique(values).tolist() if count < v != VOID]
    if extra:
        _warn_once(key, f"{png}: instance value{'s' * (len(extra) > 1)} "
                        f"{', '.join(map(str, extra))} {'have' if len(extra) > 1 else 'has'} "
                        f"no object (and so no class) in {source} ({count} objects): those "
                        "pixels are not used")
