"""Small pycaffe nets around a single RoI layer (ROIAlign, ROIPooling, PyramidROIAlign), for tests,
benchmarks and the GPU bundle."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _param_text(params: Mapping[str, Any]) -> str:
    """`key: value ...`; a list or tuple value is a repeated field (one entry per item)."""
    parts = []
    for key, value in params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        parts += [f"{key}: {_value_text(v)}" for v in values]
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


def pyramid_prototxt(map_shapes: Sequence[tuple[int, ...]], num_rois: int,
                     roi_params: Mapping[str, Any], pyramid_params: Mapping[str, Any]) -> str:
    """A net: Input `rois` (R, 5), Inputs `p0`, `p1`, ... (the feature maps, finest first),
    one PyramidROIAlign layer `pyramid` with top `out`. pyramid_params: pyramid_roi_param's
    fields (spatial_scale a list, one per map)."""
    inputs = [f'layer {{ name: "rois" type: "Input" top: "rois" '
              f"input_param {{ shape {{ dim: {num_rois} dim: 5 }} }} }}"]
    for i, shape in enumerate(map_shapes):
        dims = " ".join(f"dim: {d}" for d in shape)
        inputs.append(f'layer {{ name: "p{i}" type: "Input" top: "p{i}" '
                      f"input_param {{ shape {{ {dims} }} }} }}")
    bottoms = " ".join(['bottom: "rois"'] + [f'bottom: "p{i}"' for i in range(len(map_shapes))])
    return "\n".join(['name: "pyramid_roi_net"', "force_backward: true", *inputs,
                      f'layer {{ name: "pyramid" type: "PyramidROIAlign" {bottoms} top: "out"',
                      f"  roi_pooling_param {{ {_param_text(roi_params)} }}",
                      f"  pyramid_roi_param {{ {_param_text(pyramid_params)} }} }}", ""])


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


class PyramidRunner:
    """Runs one PyramidROIAlign layer forward and backward on numpy inputs."""

    def __init__(self, map_shapes: Sequence[tuple[int, ...]], num_rois: int,
                 pyramid_params: Mapping[str, Any], **roi_params: Any) -> None:
        self.levels = len(map_shapes)
        self.net = load_net(pyramid_prototxt(map_shapes, num_rois, roi_params, pyramid_params))

    def forward(self, maps: Sequence[np.ndarray], rois: np.ndarray) -> np.ndarray:
        self.net.blobs["rois"].data[...] = rois
        for i, m in enumerate(maps):
            self.net.blobs[f"p{i}"].data[...] = m
        self.net.forward()
        return self.net.blobs["out"].data.copy()

    def backward(self, top_diff: np.ndarray) -> list[np.ndarray]:
        self.net.blobs["out"].diff[...] = top_diff
        self.net.backward()
        return [self.net.blobs[f"p{i}"].diff.copy() for i in range(self.levels)]
