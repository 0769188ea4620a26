"""py-faster-rcnn's module names for the RPN Python layers (see rcnn.layers)."""
