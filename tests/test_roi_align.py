"""ROIAlign through pycaffe against onnxruntime's RoiAlign and an independent numpy reference;
the BIN_CORNERS and CROP_AND_RESIZE alignments against faster-rcnn.pytorch's and TensorFlow's
formulas (see the section below)."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import roi_reference as ref
from rcnn.roi_harness.nets import RoILayerRunner
from rcnn.roi_harness.onnx_reference import roi_align_op
from rcnn.roi_harness.rois import awkward_rois, proposal_like_rois


def make_inputs(seed, shape=(2, 3, 24, 32), scale=0.5, n=300):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    img_h, img_w = shape[2] / scale, shape[3] / scale
    rois = np.concatenate([proposal_like_rois(rng, n // 2, shape[0], img_h, img_w),
                           awkward_rois(rng, n - n // 2, shape[0], img_h, img_w)])
    return x, rois


ONNX_CASES = list(itertools.product(["DETECTRON", "HALF_PIXEL"], [0, 2], [1 / 16, 0.5, 1.0]))


@pytest.mark.parametrize("alignment,sampling_ratio,scale", ONNX_CASES)
def test_ave_matches_onnxruntime(caffe, alignment, sampling_ratio, scale):
    shape = (2, 4, 20, 28)
    x, rois = make_inputs(int(7 / scale), shape, scale, n=360)
    runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=7, pooled_w=5,
                            spatial_scale=scale, pool="AVE", alignment=alignment,
                            sampling_ratio=sampling_ratio)
    ours = runner.forward(x, rois)
    # onnxruntime overflows (or crashes) on boxes with x2 < x1 or y2 < y1 under half_pixel with
    # adaptive sampling (its grid is ceil of a negative size): those rows are checked against
    # the numpy reference, the rest against onnxruntime.
    to_ort = np.ones(len(rois), bool)
    if alignment == "HALF_PIXEL" and sampling_ratio == 0:
        to_ort = (rois[:, 3] >= rois[:, 1]) & (rois[:, 4] >= rois[:, 2])
        want, _ = ref.roi_align(x, rois[~to_ort], pooled_h=7, pooled_w=5, spatial_scale=scale,
                                pool="AVE", alignment=alignment, sampling_ratio=0)
        np.testing.assert_allclose(ours[~to_ort], want, atol=1e-5)
    theirs = roi_align_op(shape, (7, 5), scale, sampling_ratio,
                          alignment == "HALF_PIXEL")(x, rois[to_ort])
    err = np.abs(ours[to_ort] - theirs).max()
    print(f"ROIAlign AVE {alignment} sampling_ratio={sampling_ratio} scale={scale}: "
          f"{to_ort.sum()} RoIs, max |ours - onnxruntime| = {err:.3g}")
    assert err <= 1e-5


def test_onnx_comparison_can_fail(caffe):
    """The oracle tells CAFFE alignment (+1 pixel) apart from DETECTRON."""
    shape = (1, 2, 24, 24)
    x, rois = make_inputs(3, shape, 1.0, n=60)
    runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=3, pooled_w=3,
                            pool="AVE", alignment="CAFFE", sampling_ratio=2)
    theirs = roi_align_op(shape, (3, 3), 1.0, 2, False)(x, rois)
    assert np.abs(runner.forward(x, rois) - theirs).max() > 1e-2


GRIDS = [(-1, True), (-1, False), (0, True), (3, True)]
MODES = list(itertools.product(["MAX", "AVE"], [0, 1], GRIDS,
                               ["CAFFE", "DETECTRON", "HALF_PIXEL"], [0.0, 0.1]))


@pytest.mark.parametrize("pool,bi_type,grid,alignment,pad_ratio", MODES)
def test_matches_numpy_reference(caffe, pool, bi_type, grid, alignment, pad_ratio):
    shape = (2, 3, 9, 11)
    x, rois = make_inputs(11, shape, 0.5, n=48)
    params = dict(pooled_h=3, pooled_w=4, spatial_scale=0.5, pool=pool, bi_type=bi_type,
                  sampling_ratio=grid[0], is_multi_interpolate=grid[1], alignment=alignment,
                  pad_ratio=pad_ratio)
    runner = RoILayerRunner("ROIAlign", shape, len(rois), **params)
    top_diff = np.random.default_rng(5).standard_normal((len(rois), 3, 3, 4)).astype(np.float32)
    ours = runner.forward(x, rois)
    grad = runner.backward(top_diff)
    want, want_grad = ref.roi_align(x, rois, top_diff, **params)
    np.testing.assert_allclose(ours, want, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, atol=1e-4, rtol=1e-4)


def test_zero_rois(caffe):
    shape = (1, 3, 8, 8)
    runner = RoILayerRunner("ROIAlign", shape, 0, pooled_h=2, pooled_w=2)
    out = runner.forward(np.ones(shape, np.float32), np.zeros((0, 5), np.float32))
    assert out.shape == (0, 3, 2, 2)
    assert not runner.backward(np.zeros((0, 3, 2, 2), np.float32)).any()


def test_non_finite_rois_give_zero(caffe):
    shape = (1, 2, 8, 8)
    rois = np.array([[0, np.nan, 0, 4, 4], [0, 0, -np.inf, np.inf, 4], [0, 1, 1, 5, 5]],
                    np.float32)
    runner = RoILayerRunner("ROIAlign", shape, 3, pooled_h=2, pooled_w=2, sampling_ratio=0)
    out = runner.forward(np.ones(shape, np.float32), rois)
    assert (out[:2] == 0).all()
    np.testing.assert_allclose(out[2], 1, atol=1e-6)


BAD_BATCH_SCRIPT = """
import numpy as np
from rcnn.roi_harness.nets import RoILayerRunner
r = RoILayerRunner("ROIAlign", (2, 1, 4, 4), 2, pooled_h=1, pooled_w=1)
r.forward(np.zeros((2, 1, 4, 4), np.float32),
          np.array([[0, 0, 0, 1, 1], [{value}, 0, 0, 1, 1]], np.float32))
"""


@pytest.mark.parametrize("value,shown", [("2", "2"), ("0.5", "0.5"), ("-1", "-1"),
                                         ("np.nan", "nan")])
def test_bad_batch_index_is_a_clear_error(caffe, value, shown):
    proc = subprocess.run([sys.executable, "-c", BAD_BATCH_SCRIPT.format(value=value)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert (f"ROIAlign layer 'roi_layer': bottom 'rois' row 1 has batch index {shown}; "
            "it must be an integer in [0, 2)") in proc.stderr


def test_bad_parameters_are_clear_errors(caffe):
    script = ("from rcnn.roi_harness.nets import RoILayerRunner\n"
              "RoILayerRunner('ROIAlign', (1, 1, 4, 4), 1, pooled_h=2, pooled_w=2, bi_type=3)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ROIAlign layer 'roi_layer': roi_pooling_param.bi_type must be 0" in proc.stderr


def test_sampling_ratio_above_the_cap_is_a_clear_error(caffe):
    # grid_h * grid_w must fit an int: sampling_ratio is capped at kMaxGrid = 1024.
    script = ("from rcnn.roi_harness.nets import RoILayerRunner\n"
              "RoILayerRunner('ROIAlign', (1, 1, 4, 4), 1, pooled_h=2, pooled_w=2, "
              "sampling_ratio=46341)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0
    assert ("ROIAlign layer 'roi_layer': roi_pooling_param.sampling_ratio must be -1, 0 "
            "(adaptive) or in [1, 1024], got 46341") in proc.stderr


# --- BIN_CORNERS and CROP_AND_RESIZE -------------------------------------------------------
#
# BIN_CORNERS is checked against roi_reference.roi_align(alignment="BIN_CORNERS") (the
# definition: corner samples, inside [0, size), low tap clamped to size - 2) and, for the 2 x 2
# grid, against faster-rcnn.pytorch's own composition (RoIAlign on a (P+1)^2 grid, then 2 x 2
# stride-1 pooling). CROP_AND_RESIZE is checked against TensorFlow's formula with TensorFlow's
# arithmetic (roi_reference.crop_and_resize_tf), not TensorFlow itself: tensorflow-cpu is a
# wheel of several hundred MB, too much for CI. A sample within float32 rounding of the edge of
# the valid range (BIN_CORNERS: 0 and H; CROP_AND_RESIZE: 0 and H - 1) is inside or outside by
# a coin toss in any float32 implementation (TensorFlow's too): such outputs are left out of
# the comparison (and their top diff is 0), and each test checks that they are few.

def corner_grid(sampling_ratio: int, multi: bool) -> int:
    return sampling_ratio if sampling_ratio > 0 else (2 if multi else 1)


def compare(name: str, ours: np.ndarray, want: np.ndarray, mask: np.ndarray,
            atol: float) -> float:
    """max |ours - want| over the outputs not masked; prints it and checks atol."""
    keep = np.broadcast_to(~mask, ours.shape)
    err = float(np.abs(ours - want)[keep].max()) if keep.any() else 0.0
    print(f"{name}: {keep.mean():.1%} of outputs compared, max |ours - reference| = {err:.3g}")
    assert err <= atol, name
    return err


CORNER_GRIDS = [(-1, True), (-1, False), (3, True), (1, True)]
CORNER_CASES = [(*case, 0.0) for case in itertools.product(["AVE", "MAX"], CORNER_GRIDS,
                                                            [0.5, 0.25])]
CORNER_CASES += [("AVE", (-1, True), 0.5, 0.1), ("MAX", (3, True), 0.25, 0.1)]


@pytest.mark.parametrize("pool,grid,scale,pad_ratio", CORNER_CASES)
def test_bin_corners_matches_reference(caffe, pool, grid, scale, pad_ratio):
    shape = (2, 3, 9, 11)
    x, rois = make_inputs(21, shape, scale, n=60)
    params = dict(pooled_h=3, pooled_w=4, spatial_scale=scale, pool=pool, pad_ratio=pad_ratio,
                  sampling_ratio=grid[0], is_multi_interpolate=grid[1], alignment="BIN_CORNERS")
    g = corner_grid(*grid)
    mask = ref.edge_outputs(rois, (3, 4), scale, "BIN_CORNERS", g, shape[2:], pad_ratio)
    assert mask.mean() < 0.1
    top_diff = np.random.default_rng(2).standard_normal((len(rois), 3, 3, 4)).astype(np.float32)
    top_diff *= ~mask
    runner = RoILayerRunner("ROIAlign", shape, len(rois), **params)
    ours, grad = runner.forward(x, rois), runner.backward(top_diff)
    want, want_grad = ref.roi_align(x, rois, top_diff, **params)
    label = f"BIN_CORNERS {pool} grid={g} scale={scale} pad_ratio={pad_ratio}"
    compare(label, ours, want, mask, 5e-5)
    compare(label + " backward", grad, want_grad, np.zeros(1, bool), 2e-4)
    if g == 2 and pad_ratio == 0:
        two_step = ref.bin_corners_two_step(x, rois, 3, 4, scale, pool)
        compare(label + " vs two-step", ours, two_step, mask, 5e-5)


@pytest.mark.parametrize("shape", [(1, 2, 1, 6), (1, 2, 5, 1), (1, 1, 2, 2)])
def test_bin_corners_on_thin_maps(caffe, shape):
    """A map of height or width 1 uses its one row / column; 2 x 2 extrapolates."""
    x, rois = make_inputs(4, shape, 1 / 16, n=36)
    params = dict(pooled_h=2, pooled_w=3, spatial_scale=1 / 16, pool="AVE",
                  alignment="BIN_CORNERS")
    runner = RoILayerRunner("ROIAlign", shape, len(rois), **params)
    ours = runner.forward(x, rois)
    mask = ref.edge_outputs(rois, (2, 3), 1 / 16, "BIN_CORNERS", 2, shape[2:])
    compare(f"BIN_CORNERS map {shape[2:]}", ours,
            ref.bin_corners_two_step(x, rois, 2, 3, 1 / 16, "AVE"), mask, 5e-5)


CROP_CASES = list(itertools.product([0.5, 1.0, 1 / 16], [(7, 7), (1, 1), (2, 5)]))


@pytest.mark.parametrize("scale,pooled", CROP_CASES)
def test_crop_and_resize_matches_tensorflow_formula(caffe, scale, pooled):
    shape = (2, 3, 17, 20)
    x, rois = make_inputs(31, shape, scale, n=60)
    mask = ref.edge_outputs(rois, pooled, scale, "CROP_AND_RESIZE", 1, shape[2:])
    # At scale 1, proposals clipped to the image end exactly on W - 1: their last column (row)
    # is one of those coin tosses.
    assert mask.mean() < (0.25 if scale == 1 else 0.05)
    top_diff = np.random.default_rng(3).standard_normal((len(rois), 3, *pooled))
    top_diff = (top_diff * ~mask).astype(np.float32)
    runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=pooled[0],
                            pooled_w=pooled[1], spatial_scale=scale, alignment="CROP_AND_RESIZE")
    ours, grad = runner.forward(x, rois), runner.backward(top_diff)
    want, want_grad = ref.crop_and_resize_tf(x, rois, *pooled, scale, top_diff)
    label = f"CROP_AND_RESIZE {pooled} scale={scale}"
    compare(label, ours, want, mask, 5e-5)
    compare(label + " backward", grad, want_grad, np.zeros(1, bool), 2e-4)


def test_crop_and_resize_ignores_pool_and_sampling_ratio(caffe):
    shape = (1, 2, 8, 8)
    x, rois = make_inputs(5, shape, 0.5, n=30)
    top_diff = np.random.default_rng(1).standard_normal((len(rois), 2, 3, 3)).astype(np.float32)
    results = []
    for extra in ({}, {"pool": "AVE"}, {"sampling_ratio": 4},
                  {"sampling_ratio": 0, "is_multi_interpolate": False}):
        runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=3, pooled_w=3,
                                spatial_scale=0.5, alignment="CROP_AND_RESIZE", **extra)
        results.append((runner.forward(x, rois), runner.backward(top_diff)))
    for out, grad in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(grad, results[0][1])


@pytest.mark.parametrize("alignment", ["BIN_CORNERS", "CROP_AND_RESIZE"])
def test_corner_alignments_ave_backward_is_the_adjoint(caffe, alignment):
    """AVE is linear in the map: <backward(t), x> = <forward(x), t>, whatever the reference."""
    shape = (2, 3, 12, 10)
    x, rois = make_inputs(8, shape, 0.5, n=80)
    runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=4, pooled_w=3,
                            spatial_scale=0.5, pool="AVE", alignment=alignment)
    t = np.random.default_rng(9).standard_normal((len(rois), 3, 4, 3)).astype(np.float32)
    out = runner.forward(x, rois).astype(np.float64)
    grad = runner.backward(t).astype(np.float64)
    lhs, rhs = (grad * x).sum(), (out * t).sum()
    assert abs(lhs - rhs) <= 1e-4 * np.abs(out * t).sum()


def test_corner_references_can_fail(caffe):
    """The references tell the alignments apart: BIN_CORNERS's reference is not CAFFE's
    alignment, and boxes normalised by H instead of H - 1 are not CROP_AND_RESIZE."""
    shape = (1, 2, 20, 20)
    x, rois = make_inputs(6, shape, 1.0, n=40)
    caffe_align = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=3, pooled_w=3,
                                 pool="AVE", alignment="CAFFE").forward(x, rois)
    want, _ = ref.roi_align(x, rois, pooled_h=3, pooled_w=3, pool="AVE",
                            alignment="BIN_CORNERS")
    assert np.abs(caffe_align - want).max() > 1e-2
    crop = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=3, pooled_w=3,
                          alignment="CROP_AND_RESIZE").forward(x, rois)
    wrong = rois.copy()
    wrong[:, 1:] *= 19 / 20   # x1 / W * (W - 1): normalised by W instead of W - 1
    want, _ = ref.crop_and_resize_tf(x, wrong, 3, 3, 1.0)
    assert np.abs(crop - want).max() > 1e-2


@pytest.mark.parametrize("extra,message", [
    ("bi_type=1", "alignment BIN_CORNERS is defined for bilinear sampling only; bi_type must "
                  "be 0, got 1"),
    ("sampling_ratio=0", "alignment BIN_CORNERS samples at the bin corners and has no adaptive "
                         "grid"),
])
def test_bin_corners_bad_parameters_are_clear_errors(caffe, extra, message):
    script = ("from rcnn.roi_harness.nets import RoILayerRunner\n"
              "RoILayerRunner('ROIAlign', (1, 1, 4, 4), 1, pooled_h=2, pooled_w=2, "
              f"alignment='BIN_CORNERS', {extra})")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"ROIAlign layer 'roi_layer': {message}" in proc.stderr
