"""pycaffe Python layers of Faster R-CNN. py-faster-rcnn's module names (roi_data_layer.layer,
rpn.anchor_target_layer, rpn.proposal_layer, rpn.proposal_target_layer) re-export these."""
