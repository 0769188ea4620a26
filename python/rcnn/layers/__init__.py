"""pycaffe Python layers of Faster R-CNN: thin wrappers that read the active config
(rcnn.config.cfg) once, in setup, and call the Caffe-free logic in rcnn.rpn, rcnn.roi_sampling
and rcnn.minibatch. py-faster-rcnn's module names (roi_data_layer.layer,
rpn.anchor_target_layer, rpn.proposal_layer, rpn.proposal_target_layer) re-export them."""
