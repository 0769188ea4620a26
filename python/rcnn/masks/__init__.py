"""Mask R-CNN's mask branch without Caffe: mask targets (ground-truth masks resampled into
RoIs), pasting predicted masks into images, and mask evaluation with pycocotools' COCOeval
(segm)."""
