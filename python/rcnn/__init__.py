"""A Python 3 Faster R-CNN driven through pycaffe, with RoIAlign and RoIPooling layers."""

__version__ = "0.1.0"
