"""The VOC reader and the synthetic generator."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets.imdb import filter_roidb, flipped, without_difficult
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.datasets.voc import VOC_CLASSES, VOCDataset

XML = """<annotation><size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult>
  <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>
<object><name>cat</name><difficult>1</difficult>
  <bndbox><xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
</annotation>"""


def voc_folder(root, xml=XML, classes=None):
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / "a.xml").write_text(xml)
    (root / "ImageSets" / "Main" / "val.txt").write_text("a\n")
    Image.new("RGB", (40, 30)).save(root / "JPEGImages" / "a.jpg")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes))
    return root


def test_voc_reader(tmp_path):
    imdb = VOCDataset(voc_folder(tmp_path), "val")
    assert imdb.classes == VOC_CLASSES and imdb.num_images == 1
    (e,) = imdb.gt_roidb()
    # 1-based VOC pixels -> 0-based
    np.testing.assert_array_equal(e["boxes"], [[0, 1, 19, 29], [4, 4, 8, 8]])
    assert [imdb.classes[c] for c in e["gt_classes"]] == ["dog", "cat"]
    assert e["difficult"].tolist() == [False, True]
    assert (e["width"], e["height"]) == (40, 30) and e["image"].endswith("a.jpg")
    (easy,) = without_difficult([e])
    assert easy["gt_classes"].tolist() == [VOC_CLASSES.index("dog")]
    (f,) = flipped([e])
    np.testing.assert_array_equal(f["boxes"][0], [20, 1, 39, 29])
    assert filter_roidb([{**e, "gt_classes": np.zeros(0, int)}]) == []


def test_voc_classes_file_and_errors(tmp_path):
    root = voc_folder(tmp_path / "c", classes=["dog"])
    imdb = VOCDataset(root, "val")
    assert imdb.classes == ("__background__", "dog")
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        imdb.gt_roidb()
    bad = XML.replace("<xmax>20</xmax>", "<xmax>60</xmax>")
    with pytest.raises(ValueError, match="outside the 40 x 30 image"):
        VOCDataset(voc_folder(tmp_path / "b", bad), "val").gt_roidb()
    with pytest.raises(FileNotFoundError, match="no such image set"):
        VOCDataset(root, "train")


def test_synthetic_is_seeded_voc(tmp_path):
    spec = SyntheticSpec(seed=11)
    a = generate(tmp_path / "a", 3, 2, spec)
    b = generate(tmp_path / "b", 3, 2, spec)
    assert (a / "Annotations" / "train_00001.xml").read_text() == (
        b / "Annotations" / "train_00001.xml").read_text()
    imdb = VOCDataset(a, "train")
    assert imdb.classes == ("__background__", "circle", "square", "triangle", "cross")
    sizes = [np.sqrt((x2 - x1 + 1) * (y2 - y1 + 1)) for e in imdb.gt_roidb()
             for x1, y1, x2, y2 in e["boxes"]]
    assert all(spec.min_size - 3 <= s <= spec.max_size + 3 for s in sizes)
    stats = json.loads((a / "synthetic.json").read_text())["stats"]
    assert stats["objects"] == sum(len(e["boxes"]) for e in imdb.gt_roidb()) + sum(
        len(e["boxes"]) for e in VOCDataset(a, "test").gt_roidb())
