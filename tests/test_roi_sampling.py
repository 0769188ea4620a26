"""The detection head's RoI sampling and targets on small inputs."""
from __future__ import annotations

import numpy as np
from rcnn import boxes as B
from rcnn.config import defaults
from rcnn.roi_sampling import sample_rois


def test_sample_rois_balance_and_targets():
    train = defaults().TRAIN
    train.BATCH_SIZE = 16
    train.BG_THRESH_LO = 0.0  # as in faster_rcnn_end2end.yml: IoU 0 is background
    rng = np.random.default_rng(0)
    gt = np.array([[10, 10, 40, 40, 3]], np.float32)
    jitter = rng.uniform(-3, 3, (40, 4))
    near = np.hstack([np.zeros((40, 1)), gt[:, :4] + jitter])
    far = np.hstack([np.zeros((40, 1)), rng.uniform(60, 90, (40, 2)),
                     rng.uniform(100, 120, (40, 2))])
    rois, labels, targets, inw, outw = sample_rois(np.vstack([near, far]).astype(np.float32),
                                                   gt, 5, rng, train)
    assert len(rois) == 16 and (labels > 0).sum() == 4 and set(labels[labels > 0]) == {3}
    assert targets.shape == (16, 20)
    # Class 3's slot holds the normalised deltas; the others are zero.
    fg = labels > 0
    d = B.bbox_transform(rois[fg, 1:5], np.repeat(gt[:, :4], fg.sum(), 0))
    np.testing.assert_allclose(targets[fg, 12:16], d / [0.1, 0.1, 0.2, 0.2], atol=1e-4)
    assert not targets[fg][:, :12].any() and not targets[~fg].any()
    assert (inw[fg, 12:16] == 1).all() and (outw == inw).all()
