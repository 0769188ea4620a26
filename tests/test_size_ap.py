"""AP by object size (COCO's small / medium / large area ranges) in our evaluation, against
pycocotools' COCOeval on the multi-scale synthetic set."""
from __future__ import annotations

import numpy as np
import pytest
from rcnn.datasets import open_dataset
from rcnn.datasets.synthetic import SyntheticSpec, generate, preset
from rcnn.evaluation import coco_results, cocoeval, evaluate, in_area_range
from test_coco import fake_detections


def test_area_ranges_are_coco_s():
    boxes = np.array([[0, 0, 30, 30], [0, 0, 31, 31], [0, 0, 95, 95], [0, 0, 96, 96]], float)
    # bounds included, as in COCOeval: a 32 x 32 box is small and medium
    assert in_area_range(boxes, (0, 32 ** 2)).tolist() == [True, True, False, False]
    assert in_area_range(boxes, (32 ** 2, 96 ** 2)).tolist() == [False, True, True, False]
    assert in_area_range(boxes, (96 ** 2, np.inf)).tolist() == [False, False, True, True]


def test_multiscale_preset_spreads_sizes(tmp_path):
    spec = preset("multiscale", seed=3)
    assert (spec.image_size, spec.min_size, spec.max_size, spec.seed) == (384, 8.0, 160.0, 3)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        preset("nope")


def test_size_ap_equals_cocoeval(tmp_path):
    spec = SyntheticSpec(image_size=256, min_size=6, max_size=150, min_objects=4,
                         max_objects=8, seed=11)
    root = generate(tmp_path, 1, 30, spec)
    imdb = open_dataset(root / "test.json", "test")
    roidb = imdb.gt_roidb()
    dets = fake_detections(roidb, imdb.num_classes, np.random.default_rng(1))
    ours = evaluate(dets, roidb, imdb.classes)["mean"]
    theirs = cocoeval(imdb.coco, coco_results(dets, roidb, imdb.category_ids),
                      [e["id"] for e in roidb], imdb.classes, imdb.category_ids)["mean"]
    print({k: (ours[k], theirs[k]) for k in ("ap", "aps", "apm", "apl")})
    assert min(theirs["aps"], theirs["apm"], theirs["apl"]) > 0.1   # every range populated
    for k in ("aps", "apm", "apl"):
        assert ours[k] == pytest.approx(theirs[k], abs=1e-9), k


def test_size_ap_by_hand():
    """One small and one large object of one class: finding only the small one gives APs 1,
    APl 0; a large false positive does not count against APs."""
    roidb = [{"boxes": np.array([[0, 0, 9, 9], [20, 20, 139, 139]], float),
              "gt_classes": np.array([1, 1])}]
    dets = [[np.zeros((0, 5))],
            [np.array([[0, 0, 9, 9, 0.9], [200, 200, 399, 399, 0.95]])]]
    m = evaluate(dets, roidb, ["__background__", "a"])["mean"]
    assert m["aps"] == pytest.approx(1.0)
    assert m["apl"] == 0.0
    assert m["apm"] == -1.0
