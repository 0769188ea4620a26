"""Reading a Python layer's param_str the way py-faster-rcnn's prototxts write it."""
from __future__ import annotations

from typing import Any

import yaml


def parse_param_str(text: str | None, layer: str) -> dict[str, Any]:
    """"'feat_stride': 16" (a YAML mapping, braces optional) -> {'feat_stride': 16}."""
    if not text or not text.strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{layer}: param_str {text!r} is not a YAML mapping: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{layer}: param_str {text!r} is not a mapping")
    return value


def phase_key(phase: int) -> str:
    """The cfg section of a layer's phase (caffe.TRAIN == 0)."""
    return "TRAIN" if int(phase) == 0 else "TEST"
