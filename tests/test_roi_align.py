"""ROIAlign through pycaffe against onnxruntime's RoiAlign and an independent numpy reference."""
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
