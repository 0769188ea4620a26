from rcnn.layers.anchor_target import AnchorTargetLayer  # noqa: F401
