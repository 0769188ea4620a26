"""What the tests and benchmarks use to exercise one RoI layer: single-layer pycaffe nets
(nets), RoIs to feed them (rois), and onnxruntime's RoiAlign / MaxRoiPool as independent
references (onnx_reference)."""
