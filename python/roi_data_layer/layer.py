from rcnn.layers.roi_data import RoIDataLayer  # noqa: F401
