"""RoIDataLayer: feeds one image (and its ground truth) per iteration from a roidb."""
from __future__ import annotations

from typing import Any

import caffe
import numpy as np

from rcnn.augment import build_transforms, check_train_config, expand_windows
from rcnn.config import cfg, pixel_means
from rcnn.layers.params import parse_param_str
from rcnn.minibatch import get_minibatch


class RoIDataLayer(caffe.Layer):
    """Tops: data, im_info, gt_boxes, and for a Mask R-CNN gt_masks (a fourth top: the
    objects' masks at the image's size before its scaling, rcnn.minibatch.gt_mask_blob).
    Call set_roidb() before the first forward. With cfg.TRAIN.WINDOW_SIZE, set_roidb() turns
    large images into training windows (rcnn.augment.expand_windows); cfg.TRAIN.AUGMENT's
    albumentations transforms are built at setup (a bad entry raises ValueError naming it)
    and applied per minibatch, seeded from the layer's generator."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "RoIDataLayer")
        self._num_classes = int(params.get("num_classes", 0))
        self._train = cfg.TRAIN
        self._pixel_means = pixel_means(cfg)
        if not self._train.HAS_RPN:
            raise ValueError("RoIDataLayer: only end-to-end (TRAIN.HAS_RPN) minibatches are "
                             "supported")
        self._names = ["data", "im_info", "gt_boxes", "gt_masks"][:len(top)]
        if len(top) not in (3, 4):
            raise ValueError(f"RoIDataLayer: expects tops data, im_info, gt_boxes (and "
                             f"gt_masks), got {len(top)}")
        check_train_config(self._train)
        self._transforms = build_transforms(self._train.get("AUGMENT", ()))
        self._roidb: list[dict[str, Any]] = []
        self._rng = np.random.default_rng(cfg.RNG_SEED)
        self._perm = np.zeros(0, dtype=np.int64)
        self._cur = 0
        top[0].reshape(self._train.IMS_PER_BATCH, 3, max(self._train.SCALES),
                       self._train.MAX_SIZE)
        top[1].reshape(1, 3)
        top[2].reshape(1, 5)
        if len(top) == 4:   # a placeholder: each forward gives (G, H, W) of the original image
            top[3].reshape(1, max(self._train.SCALES), self._train.MAX_SIZE)

    def set_roidb(self, roidb: list[dict[str, Any]]) -> None:
        if not roidb:
            raise ValueError("RoIDataLayer: the roidb is empty")
        if "gt_masks" in self._names:
            from rcnn.datasets.masks import has_masks

            if not any(has_masks(e) for e in roidb):
                raise ValueError("RoIDataLayer: the net trains masks (top gt_masks) but the "
                                 "dataset has no instance masks")
        size = int(self._train.get("WINDOW_SIZE", 0))
        self._roidb = (expand_windows(roidb, size, float(self._train.WINDOW_OVERLAP))
                       if size > 0 else roidb)
        self._shuffle()

    def _shuffle(self) -> None:
        self._perm = self._rng.permutation(len(self._roidb))
        self._cur = 0

    def state(self) -> dict[str, Any]:
        """Where the layer is in its epoch, for snapshots."""
        return {"perm": self._perm.tolist(), "cur": self._cur,
                "rng": self._rng.bit_generator.state}

    def restore(self, state: dict[str, Any]) -> None:
        self._perm = np.asarray(state["perm"], dtype=np.int64)
        self._cur = int(state["cur"])
        self._rng.bit_generator.state = state["rng"]

    def forward(self, bottom, top):
        if not self._roidb:
            raise RuntimeError("RoIDataLayer: call set_roidb() before the first forward")
        per_batch = self._train.IMS_PER_BATCH
        if self._cur + per_batch > len(self._roidb):
            self._shuffle()
        ids = self._perm[self._cur:self._cur + per_batch]
        self._cur += per_batch
        blobs = get_minibatch([self._roidb[i] for i in ids], self._rng, self._train,
                              self._pixel_means, with_masks="gt_masks" in self._names,
                              transforms=self._transforms)
        for i, name in enumerate(self._names):
            top[i].reshape(*blobs[name].shape)
            top[i].data[...] = blobs[name]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
