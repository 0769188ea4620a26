"""Mask R-CNN's mask branch without Caffe: mask targets (ground-truth masks resampled into
RoIs), pasting predicted masks into images, and mask detections in COCO's result format
(scored with pycocotools' COCOeval segm by rcnn.pipeline.evaluate_masks)."""
