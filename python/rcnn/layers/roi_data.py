"""RoIDataLayer: feeds one image (and its ground truth) per iteration from a roidb."""
from __future__ import annotations

from typing import Any

import caffe
import numpy as np

from rcnn.blob import images_to_blob, load_image_bgr, prep_image
from rcnn.config import cfg, pixel_means
from rcnn.layers.params import parse_param_str


def get_minibatch(roidb: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """data (1, 3, H, W), im_info (1, 3) = [height, width, scale], gt_boxes (G, 5) =
    [x1, y1, x2, y2, class] in the scaled image, for an end-to-end (RPN) minibatch."""
    if len(roidb) != 1:
        raise ValueError(f"RoIDataLayer: end-to-end training takes one image per batch, got "
                         f"{len(roidb)} (set TRAIN.IMS_PER_BATCH: 1)")
    entry = roidb[0]
    target = cfg.TRAIN.SCALES[int(rng.integers(len(cfg.TRAIN.SCALES)))]
    im = load_image_bgr(entry["image"])
    if entry.get("flipped"):
        im = im[:, ::-1]
    im, scale = prep_image(np.ascontiguousarray(im), pixel_means(), target, cfg.TRAIN.MAX_SIZE)
    fg = np.where(entry["gt_classes"] > 0)[0]
    gt = np.zeros((len(fg), 5), dtype=np.float32)
    gt[:, :4] = entry["boxes"][fg] * scale
    gt[:, 4] = entry["gt_classes"][fg]
    return {"data": images_to_blob([im]),
            "im_info": np.array([[im.shape[0], im.shape[1], scale]], dtype=np.float32),
            "gt_boxes": gt}


class RoIDataLayer(caffe.Layer):
    """Tops: data, im_info, gt_boxes. Call set_roidb() before the first forward."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, "RoIDataLayer")
        self._num_classes = int(params.get("num_classes", 0))
        if not cfg.TRAIN.HAS_RPN:
            raise ValueError("RoIDataLayer: only end-to-end (TRAIN.HAS_RPN) minibatches are "
                             "supported")
        self._names = ["data", "im_info", "gt_boxes"]
        if len(top) != len(self._names):
            raise ValueError(f"RoIDataLayer: expects tops {self._names}, got {len(top)}")
        self._roidb: list[dict[str, Any]] = []
        self._rng = np.random.default_rng(cfg.RNG_SEED)
        self._perm = np.zeros(0, dtype=np.int64)
        self._cur = 0
        top[0].reshape(cfg.TRAIN.IMS_PER_BATCH, 3, max(cfg.TRAIN.SCALES), cfg.TRAIN.MAX_SIZE)
        top[1].reshape(1, 3)
        top[2].reshape(1, 5)

    def set_roidb(self, roidb: list[dict[str, Any]]) -> None:
        if not roidb:
            raise ValueError("RoIDataLayer: the roidb is empty")
        self._roidb = roidb
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
        if self._cur + cfg.TRAIN.IMS_PER_BATCH > len(self._roidb):
            self._shuffle()
        ids = self._perm[self._cur:self._cur + cfg.TRAIN.IMS_PER_BATCH]
        self._cur += cfg.TRAIN.IMS_PER_BATCH
        blobs = get_minibatch([self._roidb[i] for i in ids], self._rng)
        for i, name in enumerate(self._names):
            top[i].reshape(*blobs[name].shape)
            top[i].data[...] = blobs[name]

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
