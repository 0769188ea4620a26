"""ROIPooling against onnxruntime's MaxRoiPool and a numpy reference."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import roi_reference as ref
from rcnn.roi_harness.nets import RoILayerRunner
from rcnn.roi_harness.onnx_reference import max_roi_pool_op
from rcnn.roi_harness.rois import awkward_rois, proposal_like_rois


@pytest.mark.parametrize("scale", [1 / 16, 0.5, 1.0])
def test_matches_onnxruntime_exactly(caffe, scale):
    shape = (2, 4, 19, 27)
    rng = np.random.default_rng(int(100 * scale))
    x = rng.standard_normal(shape).astype(np.float32)
    img_h, img_w = shape[2] / scale, shape[3] / scale
    rois = np.concatenate([proposal_like_rois(rng, 200, 2, img_h, img_w),
                           awkward_rois(rng, 120, 2, img_h, img_w)])
    runner = RoILayerRunner("ROIPooling", shape, len(rois), pooled_h=7, pooled_w=6,
                            spatial_scale=scale)
    ours = runner.forward(x, rois)
    theirs = max_roi_pool_op(shape, (7, 6), scale)(x, rois)
    print(f"ROIPooling scale={scale}: {len(rois)} RoIs vs onnxruntime, max |diff| = "
          f"{np.abs(ours - theirs).max():.3g}")
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, ref.roi_pool(x, rois, 7, 6, scale).astype(np.float32))


def test_backward_routes_to_argmax(caffe):
    shape = (1, 2, 8, 8)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    rois = np.array([[0, 0, 0, 7, 7], [0, 2, 2, 5, 6]], np.float32)
    runner = RoILayerRunner("ROIPooling", shape, 2, pooled_h=2, pooled_w=2, spatial_scale=1)
    out = runner.forward(x, rois)
    grad = runner.backward(np.ones_like(out))
    # Every output's gradient lands on an input equal to that output.
    assert grad.sum() == pytest.approx(out.size)
    for c in range(2):
        assert set(np.round(x[0, c][grad[0, c] > 0], 6)) <= set(np.round(out[:, c].ravel(), 6))


def test_zero_rois(caffe):
    runner = RoILayerRunner("ROIPooling", (1, 3, 8, 8), 0, pooled_h=2, pooled_w=2)
    assert runner.forward(np.ones((1, 3, 8, 8), np.float32),
                          np.zeros((0, 5), np.float32)).shape == (0, 3, 2, 2)


def test_bad_batch_index_is_a_clear_error(caffe):
    script = ("import numpy as np\nfrom rcnn.roi_harness.nets import RoILayerRunner\n"
              "r = RoILayerRunner('ROIPooling', (1, 1, 4, 4), 1, pooled_h=1, pooled_w=1)\n"
              "r.forward(np.zeros((1, 1, 4, 4), np.float32), "
              "np.array([[3, 0, 0, 1, 1]], np.float32))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ROIPooling layer 'roi_layer': bottom 'rois' row 0 has batch index 3;" in proc.stderr
