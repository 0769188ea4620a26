"""Non-finite numbers (NaN, +inf, -inf) reaching a Python layer: one check, one exception.

Every Python layer checks the bottoms whose values it computes with, at the top of forward():

    from rcnn.layers.finite import check_finite

    def forward(self, bottom, top):
        scores = check_finite("ProposalLayer", "rpn_cls_prob", bottom[0].data)
        ...

check_finite(layer, blob, array) returns the array unchanged when every value is finite and
raises NonFiniteInput otherwise: `layer` is the layer's type as the prototxt names it
(python_param's `layer:`), `blob` the bottom's role as the layer's docstring names it (a
Python layer cannot see its instance or bottom names). The message is one line, e.g.
"ProposalLayer: input rpn_bbox_pred has 1536 non-finite values (1536 NaN, 0 inf) of 1536".

What a NonFiniteInput becomes: in training (rcnn.training.Trainer) the non-finite-loss stop,
i.e. the last good weights saved and exit status 3, with the layer's instance name and the
iteration; in the tools at test time one line and exit status 3 (rcnn.tools.common.run_tool).
It is an ArithmeticError (FloatingPointError), not a ValueError, so that it is never taken for
a malformed input file (status 2).
"""
from __future__ import annotations

import numpy as np


class NonFiniteInput(FloatingPointError):
    """A Python layer got NaN or inf in one of its inputs. Attributes: layer (its type), blob
    (the input's role), nan, inf (how many of each), total (the input's size)."""

    def __init__(self, layer: str, blob: str, nan: int, inf: int, total: int) -> None:
        self.layer, self.blob = layer, blob
        self.nan, self.inf, self.total = nan, inf, total
        super().__init__(f"{layer}: input {blob} has {nan + inf} non-finite values ({nan} NaN, "
                         f"{inf} inf) of {total}")


def check_finite(layer: str, blob: str, array: np.ndarray) -> np.ndarray:
    """array, after checking that all its values are finite; NonFiniteInput(layer, blob, ...)
    naming how many are NaN and how many infinite otherwise. Integer arrays pass as they are."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return array
    nan = int(np.isnan(a).sum())
    inf = int(np.isinf(a).sum())
    raise NonFiniteInput(layer, blob, nan, inf, int(a.size))
