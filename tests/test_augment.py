"""Training augmentation (rcnn.augment, rcnn.minibatch): boxes and masks follow the image
through every geometric transform, crops clip or drop boxes by the visible-fraction rule,
windows tile large images, seeded runs repeat, resume stays exact, and the default recipe
draws exactly what py-faster-rcnn's minibatch drew."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn.augment import (
    augment,
    build_transforms,
    expand_windows,
    jittered_window,
    objects_in,
    window_grid,
)
from rcnn.blob import images_to_blob, prep_image
from rcnn.config import load
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.minibatch import get_minibatch, gt_mask_blob

GEOMETRIC = [
    [{"name": "HorizontalFlip", "p": 1.0}],
    [{"name": "VerticalFlip", "p": 1.0}],
    [{"name": "RandomRotate90", "p": 1.0}],
    [{"name": "Transpose", "p": 1.0}],
    [{"name": "VerticalFlip", "p": 0.5}, {"name": "RandomRotate90", "p": 1.0},
     # brightness and saturation keep the black background black (contrast would not)
     {"name": "ColorJitter", "brightness": 0.3, "contrast": 0.0, "saturation": 0.3,
      "hue": 0.0, "p": 1.0}],
]


def scene(rng: np.random.Generator, h: int = 120, w: int = 160, n: int = 5):
    """A black BGR image with n non-overlapping grey-to-white rectangles and ellipses, their
    inclusive boxes and their masks (n, h, w)."""
    im = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    boxes = []
    yy, xx = np.mgrid[:h, :w]
    cells = [(r, c) for r in range(3) for c in range(4)]
    for k, cell in enumerate(rng.permutation(len(cells))[:n]):
        r, c = cells[cell]
        x0, y0 = c * 40 + int(rng.integers(2, 10)), r * 40 + int(rng.integers(2, 10))
        x1, y1 = x0 + int(rng.integers(12, 28)), y0 + int(rng.integers(12, 28))
        if k % 2:
            m = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
        else:   # an ellipse whose extremes touch the box
            cx, cy, ax, ay = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            m = ((xx - cx) / (ax + 0.5)) ** 2 + ((yy - cy) / (ay + 0.5)) ** 2 <= 1
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        masks[k] = m
        im[m] = 80 + 30 * k
    return im, np.asarray(boxes, np.float32), masks


def pixel_boxes(im: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The tight inclusive box of each object's non-black pixels in im, found through its
    mask (so an object is told from its neighbours) but checked on the image itself."""
    out = []
    for m in masks:
        ys, xs = np.nonzero(m.astype(bool) & (im.max(axis=2) > 0))
        out.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return np.asarray(out, np.float32).reshape(-1, 4)


@pytest.mark.parametrize("specs", GEOMETRIC, ids=lambda s: "+".join(t["name"] for t in s))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_and_masks_follow_the_image(specs, seed):
    im, boxes, masks = scene(np.random.default_rng(seed))
    out = augment(im, boxes, masks, build_transforms(specs), np.random.default_rng(seed), 0.5)
    assert len(out.keep) == len(boxes)
    # the masks are the objects' pixels: every mask pixel is lit, every lit pixel is in a mask
    lit = out.im.max(axis=2) > 0
    assert (lit == out.masks.any(axis=0)).all()
    # each box drawn on the augmented image still surrounds its object, tightly
    np.testing.assert_array_equal(out.boxes, pixel_boxes(out.im, out.masks))
    # and the objects are the same ones: mask areas are unchanged
    np.testing.assert_array_equal(out.masks.sum(axis=(1, 2)), masks.sum(axis=(1, 2)))


def test_photometric_jitter_changes_pixels_not_geometry():
    im, boxes, masks = scene(np.random.default_rng(4))
    specs = [{"name": "ColorJitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3,
              "hue": 0.05, "p": 1.0}]
    out = augment(im, boxes, masks, build_transforms(specs), np.random.default_rng(1), 0.5)
    assert not np.array_equal(out.im, im) and out.im.shape == im.shape
    np.testing.assert_array_equal(out.boxes, boxes)
    np.testing.assert_array_equal(out.masks, masks)


def test_a_flip_moves_boxes_like_the_roidb_flip():
    """HorizontalFlip maps x1 to W - x2 - 1, as rcnn.datasets.imdb.flipped does."""
    im, boxes, masks = scene(np.random.default_rng(5))
    out = augment(im, boxes, masks, build_transforms([{"name": "HorizontalFlip", "p": 1.0}]),
                  np.random.default_rng(0), 0.5)
    w = im.shape[1]
    np.testing.assert_array_equal(out.boxes[:, 0], w - boxes[:, 2] - 1)
    np.testing.assert_array_equal(out.boxes[:, 2], w - boxes[:, 0] - 1)
    np.testing.assert_array_equal(out.im, im[:, ::-1])


def test_a_window_clips_boxes_mostly_inside_and_drops_the_others():
    im = np.zeros((100, 100, 3), np.uint8)
    # in a window of columns 0-49: box 0 is 60% inside, box 1 40%, box 2 fully
    boxes = np.array([[20, 10, 69, 19], [30, 30, 79, 39], [5, 60, 24, 79]], np.float32)
    masks = np.zeros((3, 100, 100), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[k, y0:y1 + 1, x0:x1 + 1] = 1
        im[y0:y1 + 1, x0:x1 + 1] = 50 + 50 * k
    out = augment(im, boxes, masks, [], np.random.default_rng(0), 0.5, (0, 0, 50, 100))
    assert out.keep.tolist() == [0, 2]
    np.testing.assert_array_equal(out.boxes, [[20, 10, 49, 19], [5, 60, 24, 79]])
    assert out.im.shape == (100, 50, 3) and out.masks.shape == (2, 100, 50)
    np.testing.assert_array_equal(out.boxes, pixel_boxes(out.im, out.masks))
    # a stricter rule drops box 0 as well; a laxer one keeps box 1
    assert augment(im, boxes, masks, [], np.random.default_rng(0), 0.7,
                   (0, 0, 50, 100)).keep.tolist() == [2]
    assert augment(im, boxes, masks, [], np.random.default_rng(0), 0.3,
                   (0, 0, 50, 100)).keep.tolist() == [0, 1, 2]


def test_bbox_safe_crop_keeps_every_box():
    im, boxes, masks = scene(np.random.default_rng(3))
    specs = [{"name": "RandomSizedBBoxSafeCrop", "height": 96, "width": 128, "p": 1.0}]
    for seed in range(5):
        out = augment(im, boxes, masks, build_transforms(specs), np.random.default_rng(seed),
                      0.5)
        assert len(out.keep) == len(boxes) and out.im.shape == (96, 128, 3)
        # resized: the box stays within a pixel of its object's (interpolated) pixels
        np.testing.assert_allclose(out.boxes, pixel_boxes(out.im, out.masks), atol=1.5)


def test_seeded_runs_repeat_and_seeds_differ():
    im, boxes, masks = scene(np.random.default_rng(0))
    specs = [{"name": "RandomRotate90", "p": 1.0},
             {"name": "ColorJitter", "brightness": 0.3, "hue": 0.05, "p": 1.0}]
    transforms = build_transforms(specs)
    a = [augment(im, boxes, masks, transforms, rng, 0.5) for rng in
         (np.random.default_rng(7), np.random.default_rng(7), np.random.default_rng(8))]
    np.testing.assert_array_equal(a[0].im, a[1].im)
    np.testing.assert_array_equal(a[0].boxes, a[1].boxes)
    assert not np.array_equal(a[0].im, a[2].im)


@pytest.mark.parametrize("spec, message", [
    ({"name": "NoSuchTransform"}, "'NoSuchTransform' is not an albumentations transform"),
    ({"p": 0.5}, "expected {name:"),
    ({"name": "ColorJitter", "brightness": "lots"}, "TRAIN.AUGMENT[1] ColorJitter: bad"),
])
def test_bad_transform_specs_name_the_entry(spec, message):
    with pytest.raises(ValueError) as e:
        build_transforms([{"name": "VerticalFlip"}, spec])
    assert message in str(e.value) and "TRAIN.AUGMENT[1]" in str(e.value)


@pytest.mark.parametrize("w, h, size, overlap", [(2299, 2472, 400, 0.25), (1249, 1035, 400, 0),
                                                 (400, 300, 400, 0.25), (1000, 50, 256, 0.5)])
def test_window_grid_covers_the_image_and_ends_at_its_borders(w, h, size, overlap):
    windows = window_grid(w, h, size, overlap)
    cover = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == min(size, w) and y1 - y0 == min(size, h)
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    xs = sorted({win[0] for win in windows})
    if len(xs) > 1:   # neighbours overlap by at least the requested fraction
        assert max(b - a for a, b in zip(xs, xs[1:], strict=False)) <= round(size * (1 - overlap))
    assert max(win[2] for win in windows) == w and max(win[3] for win in windows) == h


def test_expand_windows_keeps_windows_with_objects_and_jitter_stays_inside():
    entry = {"image": "x.png", "width": 1000, "height": 600, "flipped": False,
             "boxes": np.array([[10, 10, 40, 40], [900, 500, 950, 560]], np.float32),
             "gt_classes": np.array([1, 1])}
    small = {**entry, "width": 300, "height": 300, "boxes": entry["boxes"][:1]}
    out = expand_windows([entry, small], 400, 0.25)
    windows = [e["window"] for e in out if "window" in e]
    assert out[-1] is small and len(windows) == 2   # the two windows holding a centre
    rng = np.random.default_rng(0)
    for e in out[:-1]:
        for _ in range(50):
            x0, y0, x1, y1 = jittered_window(e, rng)
            assert 0 <= x0 and x1 <= 1000 and 0 <= y0 and y1 <= 600
            assert (x1 - x0, y1 - y0) == (400, 400)
    assert objects_in(entry["boxes"], (0, 0, 400, 400)).tolist() == [0]


@pytest.fixture(scope="module")
def tiny_masks(tmp_path_factory):
    from rcnn.datasets.imdb import train_roidb
    from rcnn.datasets.voc import VOCDataset

    data = generate(tmp_path_factory.mktemp("aug") / "data", 6, 1,
                    SyntheticSpec(image_size=200, seed=4))
    return train_roidb(VOCDataset(data, "train"), True)


def test_the_default_recipe_draws_only_the_scale(tiny_masks):
    """Without AUGMENT and windows the minibatch is py-faster-rcnn's: the image resized to
    one of SCALES (one draw from rng) and its boxes scaled, nothing else."""
    from rcnn.datasets.images import read_image_bgr

    train = load({"TRAIN": {"SCALES": [160, 240]}}).TRAIN
    means = np.array([[100.0, 110.0, 120.0]], np.float32)
    for entry in tiny_masks[:4]:
        rng, ref = np.random.default_rng(11), np.random.default_rng(11)
        blobs = get_minibatch([entry], rng, train, means, with_masks=True)
        target = train.SCALES[int(ref.integers(2))]
        assert rng.bit_generator.state == ref.bit_generator.state
        im = read_image_bgr(entry["image"])
        if entry["flipped"]:
            im = im[:, ::-1]
        want, scale = prep_image(np.ascontiguousarray(im), means, target, train.MAX_SIZE)
        np.testing.assert_array_equal(blobs["data"], images_to_blob([want]))
        np.testing.assert_array_equal(blobs["gt_boxes"][:, :4], entry["boxes"] * scale)
        np.testing.assert_array_equal(blobs["gt_masks"], gt_mask_blob(entry, np.arange(
            len(entry["boxes"]))))


def test_minibatch_masks_follow_the_boxes(tiny_masks):
    """Through windows, rotations, flips and scale jitter, each gt mask's extent is its gt
    box (in the image before scaling) and the scale is the image's."""
    train = load({"TRAIN": {
        "SCALE_RANGE": [120, 220], "MAX_SIZE": 400, "WINDOW_SIZE": 150, "WINDOW_OVERLAP": 0.25,
        "AUGMENT": [{"name": "VerticalFlip", "p": 0.5}, {"name": "RandomRotate90", "p": 1.0},
                    {"name": "ColorJitter", "p": 1.0}]}}).TRAIN
    roidb = expand_windows(tiny_masks, 150, 0.25)
    assert all("window" in e for e in roidb)
    transforms = build_transforms(train.AUGMENT)
    rng = np.random.default_rng(0)
    checked = 0
    for entry in roidb:
        blobs = get_minibatch([entry], rng, train, np.zeros((1, 3), np.float32),
                              with_masks=True, transforms=transforms)
        scale = blobs["im_info"][0, 2]
        assert 120 <= blobs["data"].shape[2] <= 220 and blobs["gt_masks"].shape[1:] == (150,) * 2
        assert len(blobs["gt_boxes"]) >= 1
        for box, mask in zip(blobs["gt_boxes"], blobs["gt_masks"], strict=True):
            ys, xs = np.nonzero(mask > 0)
            extent = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)
            b = box[:4] / scale
            # the mask lies in its box; an object the window did not cut fills it (a cut one
            # may be narrower than its clipped box across the cut)
            assert (extent[:2] >= b[:2] - 1).all() and (extent[2:] <= b[2:] + 1).all()
            if b.min() > 0.5 and b.max() < 148.5:
                np.testing.assert_allclose(b, extent, atol=1.0)
                checked += 1
    assert checked > 10


def test_resume_stays_exact_with_augmentation_and_windows(caffe, tmp_path):
    from rcnn.models import write_small_models
    from test_resume import losses, max_abs_difference, train

    data = generate(tmp_path / "data", 4, 1, SyntheticSpec(seed=2))
    net = write_small_models(tmp_path / "models", 5, variants=["roialign"])["roialign"]["train"]
    aug = ["--set", "TRAIN.WINDOW_SIZE", "200", "TRAIN.SCALE_RANGE", "(140, 180)",
           "TRAIN.AUGMENT", "[{'name': 'RandomRotate90', 'p': 1.0}, "
           "{'name': 'ColorJitter', 'hue': 0.05, 'p': 1.0}]"]
    straight, resumed, other = tmp_path / "straight", tmp_path / "resumed", tmp_path / "other"
    train(net, data, straight, 12, *aug)
    train(net, data, resumed, 6, *aug)
    train(net, data, resumed, 12, "--resume",
          str(resumed / "state" / "model_iter_6.solverstate"), *aug)
    assert losses(straight) == losses(resumed)
    assert max_abs_difference(straight / "model_iter_12.caffemodel",
                              resumed / "model_iter_12.caffemodel") == 0
    # the augmentation is in effect: the same seed without it trains differently
    train(net, data, other, 12, *aug[:-2])
    assert losses(other) != losses(straight)


def test_objects_without_masks_stay_ignored_through_augmentation(tiny_masks):
    """An object with no mask, and one whose mask is dropped when decoded (mostly outside
    its box), get -1 masks (ignored by the mask loss) after windows and transforms too, not
    0 (background)."""
    entry = dict(tiny_masks[0])
    h, w = entry["height"], entry["width"]
    segms = list(entry["segms"])
    segms[0] = None
    x1, y1, x2, y2 = entry["boxes"][1]
    far = [[float(w - 6), float(h - 6), float(w - 1), float(h - 6), float(w - 1), float(h - 1)]]
    if x2 > w - 30 and y2 > h - 30:   # keep the bad polygon away from the object's box
        far = [[0.0, 0.0, 5.0, 0.0, 5.0, 5.0]]
    segms[1] = far
    entry["segms"] = segms
    train = load({"TRAIN": {"AUGMENT": [{"name": "RandomRotate90", "p": 1.0}],
                            "CROP_MIN_VISIBILITY": 0.0}}).TRAIN
    for window in (False, True):
        e = {**entry, "window": (0, 0, w, h), "window_step": 0} if window else entry
        blobs = get_minibatch([e], np.random.default_rng(0), train, np.zeros((1, 3)),
                              with_masks=True,
                              transforms=build_transforms(train.AUGMENT))
        masks = blobs["gt_masks"]
        assert len(masks) == len(entry["boxes"])
        assert (masks[0] == -1).all() and (masks[1] == -1).all()
        assert all(set(np.unique(m)) <= {0.0, 1.0} and m.any() for m in masks[2:])


def test_window_masks_are_decoded_inside_the_window_only(tiny_masks):
    from rcnn.datasets.masks import instance_masks

    entry = tiny_masks[1]
    full = instance_masks(entry)
    part = instance_masks(entry, (30, 20, 130, 90))
    assert part.shape == (len(full), 70, 100)
    np.testing.assert_array_equal(part, full[:, 20:90, 30:130])


@pytest.mark.parametrize("key, value, message", [
    ("SCALE_RANGE", [600], "TRAIN.SCALE_RANGE: expected (lo, hi)"),
    ("SCALE_RANGE", [500, 300], "TRAIN.SCALE_RANGE: expected (lo, hi)"),
    ("WINDOW_SIZE", -5, "TRAIN.WINDOW_SIZE: expected a window size"),
    ("WINDOW_OVERLAP", 1.5, "TRAIN.WINDOW_OVERLAP: expected a fraction in [0, 1), got 1.5"),
    ("CROP_MIN_VISIBILITY", 2.0, "TRAIN.CROP_MIN_VISIBILITY: expected a fraction"),
])
def test_bad_augmentation_keys_are_named(key, value, message):
    from rcnn.augment import check_train_config

    with pytest.raises(ValueError) as e:
        check_train_config(load({"TRAIN": {key: value}}).TRAIN)
    assert message in str(e.value)
    check_train_config(load({}).TRAIN)   # the defaults pass


def test_transforms_that_change_the_pixel_format_are_refused():
    im, boxes, masks = scene(np.random.default_rng(0))
    with pytest.raises(ValueError) as e:
        augment(im, boxes, masks, build_transforms([{"name": "Normalize"}]),
                np.random.default_rng(0), 0.5)
    assert "TRAIN.AUGMENT (Normalize) made a float32 image" in str(e.value)
