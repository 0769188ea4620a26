"""Sliced inference (rcnn.sliced, SAHI): the window grid, the mapping of a window's
detections to image coordinates, the merge of duplicates from overlapping windows, one
window the size of the image against the whole image at native scale, masks pasted at their
windows, a 3000 x 2000 image through a net that never sees more than a window, and test_net
/ demo with --slice."""
from __future__ import annotations

import json
import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, defaults, load
from rcnn.sliced import (
    Found,
    PastedMasks,
    crop_mask,
    detect_image,
    merge_class,
    merge_detections,
    native_test,
    needs_slicing,
    net_detector,
    paste_piece,
    shift,
    slice_windows,
    sliced_detect,
)

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")
SMALL = ROOT / "models" / "small"
NUM_CLASSES = 5   # the synthetic data's 4 classes and background


# ---------------------------------------------------------------------------- window grid

@pytest.mark.parametrize(("height", "width", "size", "overlap"), [
    (2000, 3000, 512, 0.25), (256, 256, 128, 0.25), (257, 300, 128, 0.2), (100, 1000, 256, 0.5),
    (1000, 90, 256, 0.0), (513, 513, 512, 0.25), (512, 512, 512, 0.25), (64, 64, 512, 0.25),
    (999, 1001, 100, 0.9)])
def test_windows_cover_the_image_overlap_as_configured_and_stay_inside(height, width, size,
                                                                        overlap):
    w = slice_windows(height, width, size, overlap)
    assert w.dtype == np.int64 and w.shape[1] == 4 and len(w) == len({tuple(b) for b in w})
    x0, y0, x1, y1 = w.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= width).all() and (y1 <= height).all()
    assert ((x1 - x0) == min(size, width)).all() and ((y1 - y0) == min(size, height)).all()
    covered = np.zeros((height, width), bool)
    for a, b, c, d in w:
        covered[b:d, a:c] = True
    assert covered.all()
    step = size - int(overlap * size)
    for starts, ends, side in ((x0, x1, width), (y0, y1, height)):
        s, e = np.unique(starts), np.unique(ends)
        assert s[0] == 0 and e[-1] == side                       # last one flush
        if side <= size:
            assert len(s) == 1
            continue
        assert (np.diff(s)[:-1] == step).all()                   # the grid's own step
        assert 0 < np.diff(s)[-1] <= step                        # the flush one: more overlap
        assert (e[:-1] - s[1:] >= int(overlap * size)).all()     # neighbours overlap
    assert needs_slicing(height, width, size) == (max(height, width) > size)


def test_bad_slice_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        slice_windows(100, 100, 50, 1.0)
    with pytest.raises(ValueError, match="size"):
        slice_windows(100, 100, 0, 0.2)
    assert not needs_slicing(5000, 5000, 0)


def test_native_test_leaves_a_window_unresized():
    from rcnn.blob import prep_image

    test = defaults().TEST
    im = np.zeros((300, 170, 3), np.uint8)
    t = native_test(test, *im.shape[:2])
    prepped, scale = prep_image(im, np.zeros(3), t.SCALES[0], t.MAX_SIZE)
    assert scale == 1.0 and prepped.shape == im.shape
    assert test.SCALES == (600,) and test.MAX_SIZE == 1000     # the original untouched


# ------------------------------------------------- a fake detector that reads the pixels

def _painted(height, width, objects):
    """A BGR image with each object (class, x1, y1, x2, y2, score) painted as a rectangle:
    channel 0 the class, channel 1 the object's number, channel 2 its score x 250."""
    im = np.zeros((height, width, 3), np.uint8)
    for k, (c, x1, y1, x2, y2, score) in enumerate(objects):
        im[y1:y2 + 1, x1:x2 + 1] = (c, k + 1, round(score * 250))
    return im


def _pixel_detector(seen):
    """Finds the painted rectangles of a window (window coordinates); one cut by the window's
    edge is not reported (a detector that only knows whole objects)."""

    def detect(window):
        seen.append(window.shape)
        h, w = window.shape[:2]
        dets = [np.zeros((0, 5), np.float32) for _ in range(NUM_CLASSES)]
        for k in np.unique(window[:, :, 1]):
            if k == 0:
                continue
            ys, xs = np.nonzero(window[:, :, 1] == k)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
            if x1 == 0 or y1 == 0 or x2 == w - 1 or y2 == h - 1:
                continue
            c = int(window[ys[0], xs[0], 0])
            score = window[ys[0], xs[0], 2] / 250
            dets[c] = np.vstack([dets[c], [[x1, y1, x2, y2, score]]]).astype(np.float32)
        return Found(dets)

    return detect


# objects no larger than the overlap (32 px of 128 at 0.25): each is whole in some window;
# several lie in the overlaps, seen whole by 2 or 4 windows
OBJECTS = [(1, 10, 10, 29, 29, 0.9),       # one window only
           (2, 100, 40, 119, 59, 0.8),     # in the overlap of columns 0 and 1
           (3, 100, 100, 119, 119, 0.7),   # in the overlap of 4 windows
           (1, 230, 150, 250, 170, 0.6),   # the flush last column
           (4, 180, 5, 191, 20, 0.5),
           (2, 101, 41, 118, 58, 0.4)]     # class 2 again, inside the first class-2 object


@pytest.mark.parametrize("merge", ["nms", "greedy_nmm"])
def test_each_window_maps_to_image_coordinates_and_duplicates_merge(merge):
    im = _painted(200, 300, OBJECTS)
    seen = []
    found, n = sliced_detect(im, _pixel_detector(seen), 128, 0.25, merge, 0.5, 100)
    assert n == len(slice_windows(200, 300, 128, 0.25)) == 6 and len(seen) == 6
    assert all(s[0] <= 128 and s[1] <= 128 for s in seen)
    for c in range(1, NUM_CLASSES):
        want = sorted((x1, y1, x2, y2, s) for k, x1, y1, x2, y2, s in OBJECTS if k == c)
        if c == 2 and merge == "greedy_nmm":
            # IoU 18 x 18 / 20 x 20 = 0.81: the two class-2 objects merge into one, the
            # union box with the higher score
            want = [(100, 40, 119, 59, 0.8)]
        elif c == 2:
            want = [(100, 40, 119, 59, 0.8)]     # nms: the lower-scored one dropped
        got = sorted(tuple(float(v) for v in d) for d in found.dets[c])
        np.testing.assert_allclose(got, np.array(want, np.float64).reshape(-1, 5),
                                   atol=1e-6, err_msg=f"class {c}")
        assert list(found.dets[c][:, 4]) == sorted(found.dets[c][:, 4], reverse=True)


def test_without_merging_the_windows_report_each_object_once_per_window_that_sees_it():
    """The duplicates that the merge removes are there: an object in the overlap of 4
    windows, found by each, at the same image coordinates."""
    im = _painted(200, 300, OBJECTS[2:3])
    windows = slice_windows(200, 300, 128, 0.25)
    detect = _pixel_detector([])
    shifted = [shift(detect(np.ascontiguousarray(im[b:d, a:c])), int(a), int(b)).dets[3]
               for a, b, c, d in windows]
    hits = np.vstack([d for d in shifted if len(d)])
    assert hits.shape == (4, 5) and (hits == np.float32([100, 100, 119, 119, 0.7])).all()


def test_cut_objects_and_a_whole_image_pass_merge_into_one():
    """A detector that also reports objects cut by the window's edge (lower score): nms
    keeps the whole object; the full-image pass adds its (better) detection, which wins."""

    def cut_too(window):
        h, w = window.shape[:2]
        dets = [np.zeros((0, 5), np.float32) for _ in range(NUM_CLASSES)]
        ys, xs = np.nonzero(window[:, :, 1])
        if len(xs):
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
            cut = x1 == 0 or y1 == 0 or x2 == w - 1 or y2 == h - 1
            dets[1] = np.float32([[x1, y1, x2, y2, 0.3 if cut else 0.6]])
        return Found(dets)

    # wider than the overlap, inside both rows of windows (y 72 to 127): cut in two columns
    im = _painted(200, 300, [(1, 80, 80, 121, 110, 0.6)])
    found, _ = sliced_detect(im, cut_too, 128, 0.25, "nms", 0.5, 100)
    assert [tuple(d) for d in found.dets[1]] == [(80, 80, 121, 110, np.float32(0.6))]

    def whole(image):
        dets = [np.zeros((0, 5), np.float32) for _ in range(NUM_CLASSES)]
        dets[1] = np.float32([[80, 80, 121, 110, 0.95]])
        return Found(dets)

    found, _ = sliced_detect(im, cut_too, 128, 0.25, "nms", 0.5, 100, full_image=whole)
    assert [tuple(d) for d in found.dets[1]] == [(80, 80, 121, 110, np.float32(0.95))]


# --------------------------------------------------------------------------- merging

def _piece(height, width, x1, y1, x2, y2):
    m = np.zeros((height, width), np.uint8)
    m[y1:y2 + 1, x1:x2 + 1] = 1
    return crop_mask(m)


def test_merge_is_per_class_nms_or_greedy_nmm_with_masks():
    a = [10, 10, 29, 29, 0.9]
    b = [12, 10, 31, 29, 0.8]          # IoU with a: 18 x 20 / (800 - 360) = 0.82
    c = [100, 100, 119, 119, 0.7]
    d = [110, 100, 129, 119, 0.6]      # IoU with c: 200 / 600 = 0.33
    dets = np.float32([a, b, c, d])
    masks = [_piece(200, 200, *map(int, x[:4])) for x in dets]
    kept, kept_masks = merge_class(dets, masks, "nms", 0.5)
    np.testing.assert_array_equal(kept, np.float32([a, c, d]))
    assert [p[:2] for p in kept_masks] == [(10, 10), (100, 100), (110, 100)]
    merged, merged_masks = merge_class(dets, masks, "greedy_nmm", 0.5)
    np.testing.assert_array_equal(merged, np.float32([[10, 10, 31, 29, 0.9], c, d]))
    union = paste_piece(merged_masks[0], 200, 200)
    assert union.sum() == 22 * 20 and union[10:30, 10:32].all()
    pasted = PastedMasks([*merged_masks, None], 200, 200)   # (the demo's: pasted when read)
    assert len(pasted) == 4 and (list(pasted)[0] == union).all() and not pasted[3].any()
    # per class: the same boxes as another class are not merged with these
    parts = [Found([np.zeros((0, 5), np.float32), dets[:2], dets[:1]],
                   [[], masks[:2], masks[:1]]),
             Found([np.zeros((0, 5), np.float32), dets[2:], np.zeros((0, 5), np.float32)],
                   [[], masks[2:], []])]
    found = merge_detections(parts, "nms", 0.5, 100)
    assert [len(x) for x in found.dets] == [0, 3, 1] and [len(m) for m in found.masks] == [0, 3, 1]
    # the per-image cap, over all classes
    capped = merge_detections(parts, "nms", 0.5, 2)
    assert [len(x) for x in capped.dets] == [0, 1, 1] and capped.dets[1][0, 4] == np.float32(0.9)
    with pytest.raises(ValueError, match="merge"):
        merge_class(dets, None, "wbf", 0.5)


def test_greedy_nmm_agrees_with_sahis_object_prediction_postprocess():
    """merge_class's greedy_nmm against SAHI's GreedyNMMPostprocess on the same boxes (given
    to SAHI end-exclusive, as merge_class does): the same boxes and scores."""
    from sahi.postprocess.combine import GreedyNMMPostprocess
    from sahi.prediction import ObjectPrediction

    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 80, (60, 2))
    wh = rng.uniform(8, 30, (60, 2))
    dets = np.float32(np.hstack([xy, xy + wh, rng.uniform(0.1, 1, (60, 1))]))
    ours, _ = merge_class(dets, None, "greedy_nmm", 0.4)
    preds = [ObjectPrediction(bbox=[float(d[0]), float(d[1]), float(d[2]) + 1,
                                    float(d[3]) + 1], category_id=1, score=float(d[4]))
             for d in dets]
    theirs = GreedyNMMPostprocess(0.4, "IOU", class_agnostic=False)(preds)
    theirs = np.array([[*(np.array(p.bbox.to_xyxy()) - [0, 0, 1, 1]), p.score.value]
                       for p in theirs])
    theirs = theirs[np.argsort(-theirs[:, 4], kind="stable")]
    assert 5 < len(ours) < 60
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


# ------------------------------------------------------------------------- the real nets

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from rcnn.datasets.synthetic import SyntheticSpec, generate

    return generate(tmp_path_factory.mktemp("data"), 4, 4, SyntheticSpec(seed=11))


def _net(caffe, variant):
    """The committed small test net with seeded random weights, N(0, 0.01): untrained, but
    with distinct scores and proper boxes (its fillers' weights saturate the softmax)."""
    activate(load(CFG))
    net = caffe.Net(str(SMALL / variant / "test.prototxt"), caffe.TEST)
    rng = np.random.default_rng(0)
    for params in net.params.values():
        for p in params:
            p.data[...] = rng.normal(0, 0.01, p.data.shape)
    return net


def _images(tiny_data):
    from rcnn.datasets import open_dataset
    from rcnn.datasets.images import read_image_bgr

    return [read_image_bgr(e["image"]) for e in open_dataset(tiny_data, "test").gt_roidb()]


def _order(d):
    """A canonical order of detections (score, then coordinates)."""
    return np.lexsort((d[:, 3], d[:, 2], d[:, 1], d[:, 0], -d[:, 4]))


def _rows(d):
    return d[_order(d)]


def test_one_window_the_size_of_the_image_is_the_whole_image_at_native_scale(caffe,
                                                                            tiny_data):
    from rcnn.config import pixel_means
    from rcnn.inference import detections_per_class, im_detect, im_segment

    config = load(CFG)
    net = _net(caffe, "mask_roialign")
    means = pixel_means(config)
    im = _images(tiny_data)[0][:, :200]           # 256 x 200
    found, n = sliced_detect(im, net_detector(net, config.TEST, means, True, 0.05), 256, 0.25,
                             "nms", 0.5, config.TEST.MAX_PER_IMAGE)
    assert n == 1
    dets = detections_per_class(*im_detect(net, im, native_test(config.TEST, 256, 200), means),
                                config.TEST)
    masks = im_segment(net, dets, 256, 200, 0.05)
    assert sum(len(d) for d in dets) > 10
    for c in range(1, NUM_CLASSES):
        ours, theirs = _order(found.dets[c]), _order(dets[c])
        np.testing.assert_array_equal(found.dets[c][ours], dets[c][theirs])
        for i, k in zip(ours, theirs, strict=True):
            if masks[c][k] is None:
                assert found.masks[c][i] is None
            else:
                np.testing.assert_array_equal(paste_piece(found.masks[c][i], 256, 200),
                                              masks[c][k])


@pytest.mark.parametrize("axis", [1, 0])
def test_two_windows_are_two_images_side_by_side(caffe, tiny_data, axis):
    """Two 256 x 256 images side by side (axis 1) or one above the other (axis 0), sliced
    at 256 without overlap: the merged detections are each image's own (the second one's
    moved 256 px right or down) and their masks likewise, capped to the image's best
    MAX_PER_IMAGE."""
    from rcnn.config import pixel_means
    from rcnn.inference import detections_per_class, im_detect, im_segment

    config = load(CFG)
    test = config.TEST
    net = _net(caffe, "mask_roialign")
    means = pixel_means(config)
    first, second = _images(tiny_data)[:2]
    im = np.concatenate([first, second], axis=axis)
    height, width = im.shape[:2]
    found, n = sliced_detect(im, net_detector(net, test, means, True, 0.05), 256, 0.0, "nms",
                             0.5, test.MAX_PER_IMAGE)
    assert n == 2
    want, want_masks = [], []
    for offset, part in ((0, first), (256, second)):
        dx, dy = (offset, 0) if axis == 1 else (0, offset)
        dets = detections_per_class(*im_detect(net, part, test, means), test)
        masks = im_segment(net, dets, 256, 256, 0.05)
        for c in range(1, NUM_CLASSES):
            for d, m in zip(dets[c], masks[c], strict=True):
                full = None
                if m is not None:
                    full = np.zeros((height, width), np.uint8)
                    full[dy:dy + 256, dx:dx + 256] = m
                want.append((c, *(d + [dx, dy, dx, dy, 0])))
                want_masks.append(full)
    thresh = np.sort([w[5] for w in want])[-test.MAX_PER_IMAGE]
    kept = [(w, m) for w, m in zip(want, want_masks, strict=True) if w[5] >= thresh]
    got = [((c, *d), p) for c in range(1, NUM_CLASSES)
           for d, p in zip(found.dets[c], found.masks[c], strict=True)]
    assert len(got) == len(kept) >= test.MAX_PER_IMAGE
    lo = 1 + (1 - axis)             # the x1 (axis 1) or y1 (axis 0) column of a row
    assert any(w[lo] >= 256 for w, _ in kept) and any(w[lo + 2] < 256 for w, _ in kept)
    assert sum(m is not None and m.any() for _, m in kept) > 10
    key = {tuple(np.float32(w)): m for w, m in kept}
    for row, p in got:
        m = key.pop(tuple(np.float32(row)))
        assert (p is None) == (m is None)
        if m is not None:
            np.testing.assert_array_equal(paste_piece(p, height, width), m)
    assert not key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # pycocotools decode, numpy 2
def test_detect_dataset_slices_the_images_over_the_size_only(caffe, tiny_data, tmp_path):
    """detect_dataset with TEST.SLICE_SIZE 256: a 300 x 200 image is sliced (detect_image's
    detections, its masks as image-sized RLE); a 256 x 256 one is not (as with slicing
    off)."""
    from PIL import Image
    from rcnn.config import pixel_means
    from rcnn.datasets.masks import decode_segm
    from rcnn.pipeline import detect_dataset

    config = load(CFG)
    net = _net(caffe, "mask_roialign")
    means = pixel_means(config)
    small = _images(tiny_data)[0]
    wide = np.ascontiguousarray(np.hstack([small, small])[28:228, 100:400])   # 200 x 300
    Image.fromarray(wide[:, :, ::-1]).save(tmp_path / "wide.png")
    Image.fromarray(small[:, :, ::-1]).save(tmp_path / "small.png")
    roidb = [{"image": str(tmp_path / "wide.png"), "width": 300, "height": 200},
             {"image": str(tmp_path / "small.png"), "width": 256, "height": 256}]
    config.TEST.SLICE_SIZE = 256
    sliced = detect_dataset(net, roidb, NUM_CLASSES, config.TEST, means)
    want = detect_image(net, wide, config.TEST, means, config.TEST.MASK_SCORE_THRESH).found
    config.TEST.SLICE_SIZE = 0
    plain = detect_dataset(net, roidb, NUM_CLASSES, config.TEST, means)
    segmented = 0
    for c in range(1, NUM_CLASSES):
        np.testing.assert_array_equal(sliced.boxes[c][0], want.dets[c])
        for rle, piece in zip(sliced.masks[c][0], want.masks[c], strict=True):
            assert (rle is None) == (piece is None)
            if rle is not None:
                assert rle["size"] == [200, 300]
                np.testing.assert_array_equal(decode_segm(rle, 200, 300),
                                              paste_piece(piece, 200, 300))
                segmented += 1
        np.testing.assert_array_equal(sliced.boxes[c][1], plain.boxes[c][1])
        assert sliced.masks[c][1] == plain.masks[c][1]
    assert segmented > 10
    assert not all(np.array_equal(sliced.boxes[c][0], plain.boxes[c][0])
                   for c in range(1, NUM_CLASSES))


# ------------------------------------------------------ memory: one window at a time

class _Blob:
    def __init__(self):
        self.data = np.zeros((1,), np.float32)

    def reshape(self, *shape):
        self.data = np.zeros(shape, np.float32)


class _RecordingNet:
    """Stands in for a box-only test net: records each input's shape and 'detects' one
    object, class 1, at (10, 10, 40, 40) of its input (net input pixels)."""

    _layer_names = ["conv", "cls_prob"]

    def __init__(self):
        self.blobs = {k: _Blob() for k in ("data", "im_info", "rois", "cls_prob", "bbox_pred")}
        self.bottom_names = {"conv": ["data"], "cls_prob": ["conv"]}
        self.top_names = {"conv": ["conv"], "cls_prob": ["rois", "cls_prob", "bbox_pred"]}
        self.shapes = []

    def forward(self, **_):
        self.shapes.append(self.blobs["data"].data.shape)
        self.blobs["rois"].data = np.float32([[0, 10, 10, 40, 40]])
        self.blobs["cls_prob"].data = np.float32([[0.1, 0.9]])
        self.blobs["bbox_pred"].data = np.zeros((1, 8), np.float32)


def test_a_3000_by_2000_image_goes_through_the_net_one_window_at_a_time(monkeypatch):
    import rcnn.inference

    floats = []
    prep = rcnn.inference.prep_image

    def recording_prep(im, *args):
        floats.append(im.shape)
        return prep(im, *args)

    monkeypatch.setattr(rcnn.inference, "prep_image", recording_prep)
    test = defaults().TEST
    test.update(SLICE_SIZE=512, MAX_PER_IMAGE=0, BBOX_REG=False)
    im = np.full((2000, 3000, 3), 128, np.uint8)      # 18 MB; as float32, 72 MB
    net = _RecordingNet()
    tracemalloc.start()
    try:
        result = detect_image(net, im, test, np.zeros(3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    windows = slice_windows(2000, 3000, 512, 0.25)
    assert result.windows == len(windows) == 40 and len(net.shapes) == 40
    assert all(s[0] == 1 and s[1] == 3 and s[2] <= 512 and s[3] <= 512 for s in net.shapes)
    assert all(h <= 512 and w <= 512 for h, w, _ in floats)
    assert peak < 18e6, f"peak {peak / 1e6:.1f} MB: more than the uint8 image itself"
    # each window's detection at its own offset (the windows' boxes do not overlap)
    want = _rows(np.float32([[x + 10, y + 10, x + 40, y + 40, 0.9] for x, y, _, _ in windows]))
    np.testing.assert_array_equal(_rows(result.found.dets[1]), want)
    # the optional whole-image pass: the image resized to TEST.SCALES / MAX_SIZE, no larger
    net.shapes.clear()
    test.SLICE_FULL_IMAGE = True
    result = detect_image(net, im, test, np.zeros(3))
    assert len(net.shapes) == 41 and net.shapes[-1] == (1, 3, 600, 900)
    assert len(result.found.dets[1]) == 41     # the whole image's: (10, 10, 40, 40) / 0.3
    assert any(abs(d[2] - 40 / 0.3) < 1e-3 for d in result.found.dets[1])


# ------------------------------------------------------------------------------- tools

@pytest.fixture(scope="module")
def random_weights(caffe, tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    paths = {}
    for variant in ("roialign", "mask_roialign"):
        paths[variant] = out / f"{variant}.caffemodel"
        _net(caffe, variant).save(str(paths[variant]))
    return paths


def test_test_net_with_slice_runs_windows_and_records_them(caffe, tiny_data, random_weights,
                                                          tmp_path, caplog):
    from rcnn.tools import test_net

    results = tmp_path / "sliced.json"
    args = ["--net", str(SMALL / "roialign" / "test.prototxt"), "--weights",
            str(random_weights["roialign"]), "--data", str(tiny_data), "--cfg", CFG,
            "--max-images", "2"]
    with caplog.at_level(logging.INFO):
        assert test_net.main([*args, "--out", str(results), "--slice", "128",
                              "--slice-overlap", "0.25", "--slice-full-image"]) == 0
    r = json.loads(results.read_text())
    assert r["slice"] == {"size": 128, "overlap": 0.25, "full_image": True, "merge": "nms",
                          "merge_iou": 0.5}
    assert r["num_images"] == 2 and len(r["detections"]) == 2
    lines = [m for m in caplog.messages if m.startswith("im_detect")]
    assert len(lines) == 2 and all("9 windows of 128 + the whole image" in m for m in lines)
    for dets in r["detections"].values():
        assert dets and all(0 <= d[1] <= d[3] <= 255 and 0 <= d[2] <= d[4] <= 255
                            for d in dets)     # [class, x1, y1, x2, y2, score]
    plain = tmp_path / "plain.json"
    assert test_net.main([*args, "--out", str(plain)]) == 0
    assert "slice" not in json.loads(plain.read_text())
    assert test_net.main([*args, "--out", str(plain), "--slice", "128",
                          "--slice-overlap", "1.5"]) == 2


def test_mask_test_net_and_demo_with_slice(caffe, tiny_data, random_weights, tmp_path):
    from rcnn.tools import demo, test_net

    net = str(SMALL / "mask_roialign" / "test.prototxt")
    results = tmp_path / "sliced.json"
    assert test_net.main(["--net", net, "--weights", str(random_weights["mask_roialign"]),
                          "--data", str(tiny_data), "--cfg", CFG, "--max-images", "1",
                          "--out", str(results), "--slice", "160",
                          "--slice-merge", "greedy_nmm"]) == 0
    r = json.loads(results.read_text())
    (index, dets), = r["detections"].items()
    assert len(r["masks"][index]) == len(dets) > 0
    assert any(m is not None and m["size"] == [256, 256] for m in r["masks"][index])
    png = tmp_path / "sliced.png"
    assert demo.main(["--net", net, "--weights", str(random_weights["mask_roialign"]),
                      "--data", str(tiny_data), "--count", "1", "--thresh", "0.1",
                      "--cfg", CFG, "--out", str(png), "--slice", "128",
                      "--slice-merge", "greedy_nmm", "--slice-merge-iou", "0.6"]) == 0
    assert png.stat().st_size > 1000
