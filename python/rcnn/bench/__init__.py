"""Benchmarks: RoI layer speed and detection accuracy."""
