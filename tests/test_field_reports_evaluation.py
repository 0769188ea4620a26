"""Field report 3: means over classes without test objects. A VOC folder of 4 classes, 2 of
them absent from the test set: every mean we report is over the 2 present classes, as
pycocotools' COCOeval leaves out categories without ground truth, and the absent classes are
listed as such."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets import open_dataset
from rcnn.evaluation import coco_results, cocoeval, evaluate

CLASSES = ("cat", "dog", "cow", "bird")   # dog and bird: no object in the test set
# per image: (class, inclusive box); small (< 32^2) and medium objects
OBJECTS = [[("cat", (4, 4, 23, 23)), ("cow", (30, 30, 79, 79))],
           [("cow", (2, 50, 21, 69)), ("cat", (40, 5, 89, 54))],
           [("cat", (60, 60, 89, 89))]]
COCO_KEYS = {"ap": 0, "ap50": 1, "ap75": 2, "aps": 3, "apm": 4, "apl": 5}


def voc_folder(root):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    names = []
    for i, objects in enumerate(OBJECTS):
        name = f"im{i}"
        names.append(name)
        Image.new("RGB", (96, 96)).save(root / "JPEGImages" / f"{name}.jpg")
        xml = "".join(
            f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1}</xmin>"
            f"<ymin>{y1 + 1}</ymin><xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>"
            for c, (x1, y1, x2, y2) in objects)
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>96</width>"
            f"<height>96</height><depth>3</depth></size>{xml}</annotation>")
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(names) + "\n")
    return root


def perfect_detections(roidb, num_classes):
    return [[np.hstack([e["boxes"][e["gt_classes"] == c], np.ones((int(
        (e["gt_classes"] == c).sum()), 1))]) for e in roidb] for c in range(num_classes)]


def with_noise(roidb, num_classes, rng):
    """Jittered boxes with random scores, duplicates and false positives, also in the absent
    classes."""
    dets = []
    for c in range(num_classes):
        per_image = []
        for e in roidb:
            gt = e["boxes"][e["gt_classes"] == c]
            jitter = gt + rng.normal(0, 3, gt.shape)
            fp = rng.uniform(0, 60, (2, 2))
            fp = np.hstack([fp, fp + rng.uniform(8, 30, (2, 2))])
            boxes = np.vstack([jitter, jitter[:1] + 1, fp])
            per_image.append(np.hstack([boxes, rng.uniform(0, 1, (len(boxes), 1))]))
        dets.append(per_image)
    return dets


def coco_ground_truth(roidb, classes):
    """The roidb as COCO ground truth (a pycocotools COCO), with inclusive boxes as [x, y,
    w, h] and each box's area, as coco_results writes detections."""
    from pycocotools.coco import COCO

    anns = []
    for i, e in enumerate(roidb):
        for (x1, y1, x2, y2), c in zip(e["boxes"].tolist(), e["gt_classes"].tolist(),
                                       strict=True):
            w, h = x2 - x1 + 1, y2 - y1 + 1
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c,
                         "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": [{"id": i, "width": 96, "height": 96} for i in range(len(roidb))],
                    "categories": [{"id": c, "name": n} for c, n in enumerate(classes) if c],
                    "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def pycocotools_stats(coco, dets, roidb, num_classes):
    from pycocotools.cocoeval import COCOeval

    results = coco_results(dets, [dict(e, id=i) for i, e in enumerate(roidb)],
                           list(range(1, num_classes)))
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(ev.stats[i]) for k, i in COCO_KEYS.items()}


@pytest.fixture
def dataset(tmp_path):
    imdb = open_dataset(voc_folder(tmp_path / "voc"), "test")
    assert imdb.classes == ("__background__", *CLASSES)
    return imdb, imdb.gt_roidb()


def test_perfect_detections_with_absent_classes_score_1_like_cocoeval(dataset):
    imdb, roidb = dataset
    dets = perfect_detections(roidb, imdb.num_classes)
    result = evaluate(dets, roidb, imdb.classes)
    theirs = pycocotools_stats(coco_ground_truth(roidb, imdb.classes), dets, roidb,
                               imdb.num_classes)
    assert theirs["ap"] == theirs["ap50"] == theirs["ap75"] == 1.0
    mean = result["mean"]
    # was 0.500 for each: the absent classes counted as AP 0
    for k in ("ap", "ap50", "ap75", "voc07_ap50", "voc_ap50", "aps", "apm"):
        assert mean[k] == 1.0, k
    for k in COCO_KEYS:
        # apl: no large object anywhere, -1 in both
        assert mean[k] == pytest.approx(theirs[k], abs=1e-12), k
    per_class = result["per_class"]
    assert result["absent_classes"] == ["dog", "bird"]
    for name in ("dog", "bird"):
        r = per_class[name]
        assert r["absent"] and r["num_gt"] == 0
        assert all(r[k] == -1 for k in ("ap", "ap50", "ap75", "voc07_ap50", "voc_ap50", "aps",
                                        "apm", "apl"))
    for name in ("cat", "cow"):
        assert not per_class[name]["absent"] and per_class[name]["ap"] == 1.0


def test_detections_of_absent_classes_count_in_no_mean(dataset):
    """False positives of a class without test objects change nothing, as in COCOeval."""
    imdb, roidb = dataset
    dets = perfect_detections(roidb, imdb.num_classes)
    dog = imdb.classes.index("dog")
    dets[dog] = [np.array([[10, 10, 40, 40, 0.99]]) for _ in roidb]
    mean = evaluate(dets, roidb, imdb.classes)["mean"]
    theirs = pycocotools_stats(coco_ground_truth(roidb, imdb.classes), dets, roidb,
                               imdb.num_classes)
    assert mean["ap"] == mean["voc07_ap50"] == theirs["ap"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_imperfect_detections_equal_cocoeval(dataset, seed):
    imdb, roidb = dataset
    dets = with_noise(roidb, imdb.num_classes, np.random.default_rng(seed))
    mean = evaluate(dets, roidb, imdb.classes)["mean"]
    theirs = pycocotools_stats(coco_ground_truth(roidb, imdb.classes), dets, roidb,
                               imdb.num_classes)
    assert 0 < theirs["ap"] < 1
    for k in COCO_KEYS:
        assert mean[k] == pytest.approx(theirs[k], abs=1e-12), k


def test_no_present_class_gives_minus_1():
    roidb = [{"boxes": np.zeros((0, 4)), "gt_classes": np.zeros(0, int)}]
    dets = [[np.zeros((0, 5))], [np.array([[0, 0, 9, 9, 0.5]])]]
    result = evaluate(dets, roidb, ["__background__", "a"])
    assert all(v == -1 for v in result["mean"].values())
    assert result["absent_classes"] == ["a"]


def test_difficult_only_class_is_absent():
    """A class whose only test objects are difficult has nothing to find: absent, as COCOeval
    treats a category whose ground truth is all ignored."""
    roidb = [{"boxes": np.array([[0, 0, 9, 9], [20, 20, 39, 39]], float),
              "gt_classes": np.array([1, 2]), "difficult": np.array([False, True])}]
    dets = [[np.zeros((0, 5))], [np.array([[0, 0, 9, 9, 1.0]])],
            [np.array([[20, 20, 39, 39, 1.0]])]]
    result = evaluate(dets, roidb, ["__background__", "a", "b"])
    assert result["per_class"]["b"]["absent"] and result["mean"]["ap"] == 1.0


def test_cocoeval_without_detections(dataset):
    """COCOeval's wrapper given no detections: 0 where there is something to find, -1 for
    the categories without ground truth and the sizes without objects."""
    imdb, roidb = dataset
    coco = coco_ground_truth(roidb, imdb.classes)
    r = cocoeval(coco, [], list(range(len(roidb))), imdb.classes,
                 list(range(1, imdb.num_classes)))
    assert r["per_class"] == {"cat": 0.0, "dog": -1.0, "cow": 0.0, "bird": -1.0}
    assert r["mean"]["ap"] == 0.0 and r["mean"]["aps"] == 0.0 and r["mean"]["apl"] == -1.0
