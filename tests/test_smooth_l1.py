"""SmoothL1Loss through pycaffe against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn.roi_harness.nets import load_net


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
