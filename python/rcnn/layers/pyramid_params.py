"""The param_str of the feature-pyramid RPN layers: levels, strides and anchors."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rcnn.rpn.anchors import level_anchors


def pyramid_anchor_params(params: Mapping[str, Any],
                          layer: str) -> tuple[list[int], list[np.ndarray]]:
    """'feat_strides' (one per level, finest first), 'anchor_sizes' (one per level) and
    'ratios' (default 0.5, 1, 2) -> the strides and each level's base anchors."""
    for key in ("feat_strides", "anchor_sizes"):
        if key not in params:
            raise ValueError(f"{layer}: param_str must give '{key}'")
    strides = [int(s) for s in params["feat_strides"]]
    try:
        anchors = level_anchors(strides, params["anchor_sizes"], params.get("ratios",
                                                                            (0.5, 1, 2)))
    except ValueError as e:
        raise ValueError(f"{layer}: {e}") from None
    return strides, anchors
