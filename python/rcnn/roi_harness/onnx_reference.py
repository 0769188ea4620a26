"""onnxruntime's RoiAlign and MaxRoiPool, independent implementations of the standard RoIAlign
(avg mode) and Fast R-CNN RoI pooling, built as one-node models: the references our layers are
tested and timed against."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class OrtRoiOp:
    """One onnxruntime session of a single RoI operator. Inputs: X (N, C, H, W) float32 and
    rois (R, 5) [batch, x1, y1, x2, y2], as our layers take them."""

    session: Any
    takes_batch_indices: bool   # RoiAlign: rois (R, 4) + batch_indices; MaxRoiPool: (R, 5)

    def feed(self, x: np.ndarray, rois: np.ndarray) -> dict[str, np.ndarray]:
        if not self.takes_batch_indices:
            return {"X": x, "rois": rois}
        return {"X": x, "rois": rois[:, 1:5].copy(),
                "batch_indices": rois[:, 0].astype(np.int64)}

    def __call__(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        return self.session.run(None, self.feed(x, rois))[0]


def _op(node: Any, x_shape: Sequence[int], takes_batch_indices: bool,
        threads: int) -> OrtRoiOp:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape)),
              helper.make_tensor_value_info("rois", TensorProto.FLOAT,
                                            [None, 4 if takes_batch_indices else 5])]
    if takes_batch_indices:
        inputs.append(helper.make_tensor_value_info("batch_indices", TensorProto.INT64, [None]))
    graph = helper.make_graph([node], node.op_type, inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8   # what the pip onnxruntime accepts from the pip onnx
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return OrtRoiOp(session, takes_batch_indices)


def roi_align_op(x_shape: Sequence[int], pooled: tuple[int, int], spatial_scale: float,
                 sampling_ratio: int, half_pixel: bool, threads: int = 0) -> OrtRoiOp:
    """RoiAlign, mode avg: half_pixel is our alignment HALF_PIXEL, otherwise DETECTRON
    (coordinate_transformation_mode output_half_pixel). threads 0: onnxruntime's default."""
    from onnx import helper

    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode="avg",
        output_height=pooled[0], output_width=pooled[1], sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
        coordinate_transformation_mode="half_pixel" if half_pixel else "output_half_pixel")
    return _op(node, x_shape, True, threads)


def max_roi_pool_op(x_shape: Sequence[int], pooled: tuple[int, int], spatial_scale: float,
                    threads: int = 0) -> OrtRoiOp:
    """MaxRoiPool: Fast R-CNN's RoI max pooling, our ROIPooling."""
    from onnx import helper

    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(pooled),
                            spatial_scale=spatial_scale)
    return _op(node, x_shape, False, threads)
