"""The region proposal network's logic, free of Caffe: anchors, anchor targets (training) and
proposals. The pycaffe layers that run it are in rcnn.layers."""
