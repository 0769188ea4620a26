"""py-faster-rcnn's module name for the RoI data layer (see rcnn.layers.roi_data)."""
