"""COCO-format datasets: reading (categories, crowds, image root, errors) and our COCO-style AP
against pycocotools' COCOeval on the synthetic set."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets import DatasetError, open_dataset
from rcnn.datasets.coco import COCODataset
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.datasets.voc import VOCDataset
from rcnn.evaluation import coco_results, cocoeval, evaluate

ANNOTATIONS = {
    "images": [{"id": 5, "file_name": "imgs/a.jpg", "width": 40, "height": 30},
               {"id": 2, "file_name": "imgs/b.png", "width": 40, "height": 30}],
    "categories": [{"id": 0, "name": "_background_"}, {"id": 7, "name": "dog"},
                   {"id": 3, "name": "cat"}],
    "annotations": [
        {"id": 1, "image_id": 5, "category_id": 7, "bbox": [1.5, 2, 10, 20], "iscrowd": 0},
        {"id": 2, "image_id": 5, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
        {"id": 3, "image_id": 5, "category_id": 3, "bbox": [30, 20, 20, 20], "iscrowd": 0},
        {"id": 4, "image_id": 5, "category_id": 0, "bbox": [1, 1, 2, 2], "iscrowd": 0}]}


def coco_folder(root, data=ANNOTATIONS, images="imgs"):
    (root / images).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30)).save(root / images / "a.jpg")
    Image.new("RGBA", (40, 30)).save(root / images / "b.png")
    path = root / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reader(tmp_path, caplog):
    imdb = open_dataset(coco_folder(tmp_path), "ignored")
    assert isinstance(imdb, COCODataset)
    # categories in id order, background skipped, contiguous classes
    assert imdb.classes == ("__background__", "cat", "dog") and imdb.category_ids == [3, 7]
    b, a = imdb.gt_roidb()                   # image ids in order: 2, 5
    assert (b["id"], a["id"]) == (2, 5) and a["image"] == str(tmp_path / "imgs" / "a.jpg")
    assert len(b["boxes"]) == 0
    # [x, y, w, h] -> inclusive pixels; the third box crosses the border: clipped
    np.testing.assert_allclose(a["boxes"], [[1.5, 2, 10.5, 21], [0, 0, 39, 29],
                                            [30, 20, 39, 29]])
    assert [imdb.classes[c] for c in a["gt_classes"]] == ["dog", "cat", "cat"]
    assert a["crowd"].tolist() == [False, True, False] and a["difficult"][1]
    assert "crosses the border" in caplog.text and "train.json (image 5" in caplog.text


def test_image_root(tmp_path):
    path = coco_folder(tmp_path / "elsewhere")
    moved = tmp_path / "ann" / "train.json"
    moved.parent.mkdir()
    path.rename(moved)
    with pytest.raises(DatasetError, match=r"train\.json: image 2: no file .* --image-root"):
        open_dataset(moved, "train").gt_roidb()
    imdb = open_dataset(moved, "train", tmp_path / "elsewhere")
    assert len(imdb.gt_roidb()) == 2


@pytest.mark.parametrize("text, message", [
    ('{"images": [', r"malformed JSON \(Expecting value at line 1 column 13\)"),
    ('[1, 2]', "not a COCO annotation file"),
    ('{"images": [], "categories": []}', r"not a COCO annotation file \(no 'annotations'"),
    (json.dumps({**ANNOTATIONS, "annotations": [{"id": 9, "image_id": 5, "category_id": 7,
                                                 "bbox": [1, 2, 3]}]}),
     r"annotations\[0\] \(id 9\) has bbox \[1, 2, 3\]"),
    (json.dumps({**ANNOTATIONS, "annotations": [{"id": 9, "image_id": 5, "category_id": 4,
                                                 "bbox": [1, 2, 3, 4]}]}),
     "annotation 9 has category_id 4"),
])
def test_coco_errors_name_the_file(tmp_path, text, message):
    path = coco_folder(tmp_path)
    path.write_text(text)
    with pytest.raises(DatasetError, match=r"train\.json: " + message):
        open_dataset(path, "train").gt_roidb()


def test_synthetic_coco_json_matches_voc(tmp_path):
    root = generate(tmp_path, 3, 2, SyntheticSpec(image_size=96, seed=3))
    voc = VOCDataset(root, "test").gt_roidb()
    imdb = open_dataset(root / "test.json", "test")
    coco = imdb.gt_roidb()
    assert imdb.classes == VOCDataset(root, "test").classes
    for v, c in zip(voc, coco, strict=True):
        assert v["image"] == c["image"]
        np.testing.assert_array_equal(v["boxes"], c["boxes"])
        np.testing.assert_array_equal(v["gt_classes"], c["gt_classes"])


def fake_detections(roidb, num_classes, rng):
    """Detections like a detector's: most objects found with a jittered box (IoU from about
    0.4 to 1), some twice, some with the wrong class, and false positives."""
    dets = [[[] for _ in roidb] for _ in range(num_classes)]
    for i, e in enumerate(roidb):
        for box, c in zip(e["boxes"], e["gt_classes"], strict=True):
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                cls = c if rng.random() < 0.9 else rng.integers(1, num_classes)
                dets[cls][i].append([*(box + jitter), rng.random()])
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, e["width"] - 20, 2)
            s = rng.uniform(5, 30)
            dets[rng.integers(1, num_classes)][i].append([x, y, x + s, y + s, rng.random()])
    return [[np.asarray(d, np.float64).reshape(-1, 5) for d in per_image]
            for per_image in dets]


def test_our_coco_style_ap_equals_cocoeval(tmp_path):
    root = generate(tmp_path, 1, 40, SyntheticSpec(image_size=128, seed=7))
    imdb = open_dataset(root / "test.json", "test")
    roidb = imdb.gt_roidb()
    dets = fake_detections(roidb, imdb.num_classes, np.random.default_rng(0))
    ours = evaluate(dets, roidb, imdb.classes)
    theirs = cocoeval(imdb.coco, coco_results(dets, roidb, imdb.category_ids),
                      [e["id"] for e in roidb], imdb.classes, imdb.category_ids)
    diff = {k: abs(ours["mean"][k] - theirs["mean"][k]) for k in ("ap", "ap50", "ap75")}
    print(f"ours {ours['mean']} vs COCOeval {theirs['mean']}: differences {diff}")
    assert 0.2 < theirs["mean"]["ap"] < 0.9        # a case that is neither trivial nor empty
    assert max(diff.values()) < 1e-12
    for name, ap in theirs["per_class"].items():
        assert ours["per_class"][name]["ap"] == pytest.approx(ap, abs=1e-12)
    assert set(theirs["mean"]) >= {"aps", "apm", "apl", "ar100"}


def test_write_coco_writes_masks_only_for_datasets_with_masks(tmp_path):
    """The synthetic set's JSON has each object's mask as compressed RLE (the PNGs' pixels);
    a VOC folder without instance PNGs gives the same box-only JSON as before."""
    from pycocotools import mask as mask_util
    from rcnn.datasets.coco import write_coco
    from rcnn.datasets.masks import instance_masks

    root = generate(tmp_path / "s", 1, 2, SyntheticSpec(image_size=64, seed=2))
    data = json.loads((root / "test.json").read_text())
    voc = VOCDataset(root, "test").gt_roidb()
    anns = iter(data["annotations"])
    for e in voc:
        for mask in instance_masks(e):
            a = next(anns)
            assert isinstance(a["segmentation"]["counts"], str) and a["iscrowd"] == 0
            np.testing.assert_array_equal(mask_util.decode(a["segmentation"]), mask)
            assert a["area"] == a["bbox"][2] * a["bbox"][3]      # box area, as before
    for sub in ("SegmentationObject", "SegmentationClass"):
        for png in (root / sub).glob("*.png"):
            png.unlink()
    plain = json.loads(write_coco(VOCDataset(root, "test"), tmp_path / "plain.json")
                       .read_text())
    assert all("segmentation" not in a for a in plain["annotations"])
    assert plain["annotations"] == [{k: v for k, v in a.items() if k != "segmentation"}
                                    for a in data["annotations"]]
