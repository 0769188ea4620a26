"""Small pycaffe nets around a single RoI layer, for tests, benchmarks and the GPU bundle."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np


def _param_text(params: Mapping[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}: {value}")
    return " ".join(parts)


def roi_layer_prototxt(layer_type: str, data_shape: tuple[int, ...], num_rois: int,
                       roi_params: Mapping[str, Any]) -> str:
    """A net: Input `data` (N, C, H, W), Input `rois` (R, 5), one RoI layer with top `out`."""
    dims = " ".join(f"dim: {d}" for d in data_shape)
    return f"""name: "roi_layer_net"
force_backward: true
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "rois" type: "Input" top: "rois"
  input_param {{ shape {{ dim: {num_rois} dim: 5 }} }} }}
layer {{ name: "roi_layer" type: "{layer_type}" bottom: "data" bottom: "rois" top: "out"
  roi_pooling_param {{ {_param_text(roi_params)} }} }}
"""


def load_net(prototxt: str, phase: str = "TEST", weights: str | None = None):
    """caffe.Net from prototxt text (written to a temporary file)."""
    import caffe

    fd, path = tempfile.mkstemp(suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(prototxt)
        phase_id = caffe.TRAIN if phase == "TRAIN" else caffe.TEST
        if weights:
            return caffe.Net(path, phase_id, weights=weights)
        return caffe.Net(path, phase_id)
    finally:
        os.unlink(path)


class RoILayerRunner:
    """Runs one RoI layer forward and backward on numpy inputs."""

    def __init__(self, layer_type: str, data_shape: tuple[int, ...], num_rois: int,
                 **roi_params: Any) -> None:
        self.net = load_net(roi_layer_prototxt(layer_type, data_shape, num_rois, roi_params))

    def forward(self, data: np.ndarray, rois: np.ndarray) -> np.ndarray:
        self.net.blobs["data"].data[...] = data
        self.net.blobs["rois"].data[...] = rois
        self.net.forward()
        return self.net.blobs["out"].data.copy()

    def backward(self, top_diff: np.ndarray) -> np.ndarray:
        self.net.blobs["out"].diff[...] = top_diff
        self.net.backward()
        return self.net.blobs["data"].diff.copy()
