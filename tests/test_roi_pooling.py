"""ROIPooling against onnxruntime's MaxRoiPool; SmoothL1Loss against numpy."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import roi_reference as ref
from rcnn.caffe_nets import RoILayerRunner, load_net
from rcnn.synthetic_rois import awkward_rois, proposal_like_rois


def onnx_max_roi_pool(x, rois, pooled, scale):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(pooled),
                            spatial_scale=scale)
    graph = helper.make_graph(
        [node], "max_roi_pool",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape)),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, [None, 5])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x, "rois": rois})[0]


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
    theirs = onnx_max_roi_pool(x, rois, (7, 6), scale)
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
    script = ("import numpy as np\nfrom rcnn.caffe_nets import RoILayerRunner\n"
              "r = RoILayerRunner('ROIPooling', (1, 1, 4, 4), 1, pooled_h=1, pooled_w=1)\n"
              "r.forward(np.zeros((1, 1, 4, 4), np.float32), "
              "np.array([[3, 0, 0, 1, 1]], np.float32))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ROIPooling layer 'roi_layer': bottom 'rois' row 0 has batch index 3;" in proc.stderr


def smooth_l1_numpy(pred, target, inside, outside, sigma):
    d = inside * (pred - target)
    s2 = sigma * sigma
    small = np.abs(d) < 1 / s2
    err = np.where(small, 0.5 * s2 * d * d, np.abs(d) - 0.5 / s2) * outside
    grad = np.where(small, s2 * d, np.sign(d)) * outside * inside
    n = pred.shape[0]
    return err.sum() / n, grad / n


def smooth_l1_net(shape, n_bottoms, sigma):
    names = ["pred", "target", "inside", "outside"][:n_bottoms]
    dims = " ".join(f"dim: {d}" for d in shape)
    inputs = "".join(f'layer {{ name: "{n}" type: "Input" top: "{n}" '
                     f"input_param {{ shape {{ {dims} }} }} }}\n" for n in names)
    bottoms = " ".join(f'bottom: "{n}"' for n in names)
    return load_net(f'force_backward: true\n{inputs}layer {{ name: "loss" type: "SmoothL1Loss" '
                    f'{bottoms} top: "loss" smooth_l1_loss_param {{ sigma: {sigma} }} }}\n')


@pytest.mark.parametrize("n_bottoms", [2, 4])
@pytest.mark.parametrize("sigma", [1.0, 3.0, 0.5])
def test_smooth_l1_matches_numpy(caffe, n_bottoms, sigma):
    shape = (6, 12, 3, 4)
    rng = np.random.default_rng(int(sigma * 10) + n_bottoms)
    pred, target = rng.standard_normal((2, *shape)).astype(np.float32)
    inside = (rng.random(shape) < 0.7).astype(np.float32) if n_bottoms == 4 else np.ones(shape)
    outside = rng.random(shape).astype(np.float32) if n_bottoms == 4 else np.ones(shape)
    net = smooth_l1_net(shape, n_bottoms, sigma)
    for name, value in zip(["pred", "target", "inside", "outside"],
                           [pred, target, inside, outside], strict=False):
        if name in net.blobs:
            net.blobs[name].data[...] = value
    loss = net.forward()["loss"]
    net.backward()
    want_loss, want_grad = smooth_l1_numpy(pred.astype(np.float64), target, inside, outside,
                                           sigma)
    assert float(loss) == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(net.blobs["pred"].diff, want_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.blobs["target"].diff, -want_grad, rtol=1e-5, atol=1e-7)
