"""The VOC reader (as VOC and annotation tools write it), image reading and the synthetic
generator."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets import DatasetError, open_dataset
from rcnn.datasets.images import image_size, read_image_bgr
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
    with pytest.raises(DatasetError, match=r"a\.xml: unknown class 'cat'"):
        imdb.gt_roidb()
    with pytest.raises(DatasetError, match="no such image set"):
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


# labelme2voc: empty <difficult/> and <truncated/>, float coordinates, no <size>; a box that
# crosses the right border, one entirely outside the image.
LABELME = """<annotation><filename>b.JPG</filename>
<object><name>dog</name><difficult/><truncated/>
  <bndbox><xmin>1.5</xmin><ymin>2.25</ymin><xmax>41.7</xmax><ymax>30</ymax></bndbox></object>
<object><name> cat </name><difficult></difficult>
  <bndbox><xmin>50</xmin><ymin>5</ymin><xmax>60</xmax><ymax>9</ymax></bndbox></object>
<object><name>cat</name><difficult>true</difficult>
  <bndbox><xmin>3</xmin><ymin>4</ymin><xmax>6</xmax><ymax>8</ymax></bndbox></object>
</annotation>"""
EMPTY = "<annotation><size><width>40</width><height>30</height></size></annotation>"


def test_voc_as_annotation_tools_write_it(tmp_path, caplog):
    root = tmp_path / "labelme"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "Annotations" / "b.xml").write_text(LABELME)
    (root / "Annotations" / "c.xml").write_text(EMPTY)
    Image.new("RGB", (40, 30)).save(root / "JPEGImages" / "b.JPG")
    Image.new("L", (40, 30)).save(root / "JPEGImages" / "c.Png")
    (root / "class_names.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    with caplog.at_level(logging.WARNING):
        imdb = open_dataset(root, "train")
        b, c = imdb.gt_roidb()
    assert imdb.classes == ("__background__", "cat", "dog")
    assert "has no ImageSets/Main/: using all 2 annotations" in caplog.text
    np.testing.assert_allclose(b["boxes"], [[0.5, 1.25, 39, 29], [2, 3, 5, 7]])
    assert [imdb.classes[k] for k in b["gt_classes"]] == ["dog", "cat"]
    assert b["difficult"].tolist() == [False, True]
    assert (b["width"], b["height"]) == (40, 30) and b["image"].endswith("b.JPG")
    assert "b.xml: box [0.5, 1.25, 40.7, 29.0] crosses the border" in caplog.text
    assert "b.xml: box [49.0, 4.0, 59.0, 8.0] is empty or outside" in caplog.text
    assert len(c["boxes"]) == 0 and c["image"].endswith("c.Png")
    # images without objects are evaluated on but not trained on
    assert [e["index"] for e in filter_roidb([b, c])] == ["b"]
    # --imageset may name a list file
    (tmp_path / "only_c.txt").write_text("c.png\n")
    assert VOCDataset(root, str(tmp_path / "only_c.txt")).image_index == ["c"]


def test_flat_folder_and_cvat_labelmap(tmp_path):
    """LabelImg / Roboflow: XML files beside the images; CVAT's labelmap.txt."""
    (tmp_path / "d.xml").write_text(XML)
    Image.new("RGB", (40, 30)).save(tmp_path / "d.jpeg")
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:1,2,3::\ndog:4,5,6::\n")
    imdb = open_dataset(tmp_path, "train")
    (e,) = imdb.gt_roidb()
    assert imdb.classes == ("__background__", "cat", "dog") and e["image"].endswith("d.jpeg")


def test_voc_errors_name_the_file(tmp_path):
    root = voc_folder(tmp_path / "v")
    (root / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"a\.xml: malformed XML \(no element found"):
        VOCDataset(root, "val").gt_roidb()
    (root / "Annotations" / "a.xml").write_text(XML.replace("<xmin>1</xmin>", "<xmin>x</xmin>"))
    with pytest.raises(DatasetError, match=r"a\.xml: object 1 \(dog\): <xmin> is 'x'"):
        VOCDataset(root, "val").gt_roidb()
    (root / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(DatasetError, match=r"a\.xml: no image a\.jpg"):
        VOCDataset(root, "val").gt_roidb()
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nowhere", "train")


def _exif_rotated(path, size=(40, 30)):
    """An image stored as size, EXIF orientation 6 (shown turned 90 degrees clockwise), with a
    red block at the stored top left."""
    im = Image.new("RGB", size, (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, exif=exif, quality=100)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_images_of_any_mode_read_as_bgr(tmp_path, mode):
    path = tmp_path / ("x.jpg" if mode in ("L", "CMYK") else "x.png")
    Image.new(mode, (5, 4)).save(path)
    im = read_image_bgr(path)
    assert im.shape == (4, 5, 3) and im.dtype == np.uint8


def test_exif_orientation(tmp_path):
    path = tmp_path / "r.jpg"
    _exif_rotated(path)
    assert image_size(path) == (30, 40)
    shown = read_image_bgr(path)
    assert shown.shape == (40, 30, 3)
    assert shown[0, -1, 2] > 200 and shown[0, 0, 2] < 50     # red went to the top right
    # an annotation drawn on the stored pixels (its size says 40 x 30): not turned
    assert read_image_bgr(path, (40, 30)).shape == (30, 40, 3)
    with pytest.raises(DatasetError, match="the image is 30 x 40 but its annotation says"):
        read_image_bgr(path, (50, 50))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"bad\.jpg: not a readable image"):
        read_image_bgr(tmp_path / "bad.jpg")
