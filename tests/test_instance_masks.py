"""Instance masks in the data (issue 22, items 1 and 10): COCO polygons / RLE and VOC instance
PNGs kept lazy in the roidb's "segms", decoded by rcnn.datasets.masks.instance_masks, checked
against pycocotools' own decoding and the PNG pixels; flips, the imdb operations, COCO ground
truth in memory; the synthetic set's masks; one warning or error per bad input."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from rcnn.datasets import DatasetError, open_dataset
from rcnn.datasets.coco import coco_ground_truth, quietly, write_coco
from rcnn.datasets.images import read_image_bgr
from rcnn.datasets.imdb import filter_roidb, flipped, training_roidb, without_difficult
from rcnn.datasets.masks import decode_segm, encode_rle, has_masks, instance_masks
from rcnn.datasets.synthetic import (
    CLASSES,
    SyntheticSpec,
    _background,
    generate,
    make_image,
    preset,
    voc_palette,
)
from rcnn.datasets.voc import VOCDataset
from rcnn.evaluation import cocoeval

W, H = 40, 30


def warnings_naming(caplog, *parts):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and all(p in r.getMessage() for p in parts)]


# ---------------------------------------------------------------- COCO forms

TRIANGLE = [5.0, 4.0, 25.0, 4.0, 15.0, 20.0]


def block(x1, y1, x2, y2):
    m = np.zeros((H, W), np.uint8)
    m[y1:y2 + 1, x1:x2 + 1] = 1
    return m


def uncompressed(mask):
    """COCO's uncompressed RLE (column-major run lengths, starting with background)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": [H, W], "counts": ([0] if flat[0] else []) + counts}


def coco_json(tmp_path, annotations, images=None):
    (tmp_path / "a.jpg").parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H)).save(tmp_path / "a.jpg")
    data = {"images": images or [{"id": 7, "file_name": "a.jpg", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
            "annotations": annotations}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def ann(i, bbox, segmentation=None, **extra):
    out = {"id": i, "image_id": 7, "category_id": 1, "bbox": bbox, "iscrowd": 0, **extra}
    if segmentation is not None:
        out["segmentation"] = segmentation
    return out


def test_coco_polygons_and_rle_decode_like_pycocotools(tmp_path):
    rect = block(30, 2, 36, 9)
    ring = block(2, 20, 12, 28)
    ring[23:26, 5:9] = 0
    compressed = encode_rle(ring)
    path = coco_json(tmp_path, [
        ann(1, [5, 4, 20, 16], [TRIANGLE]),
        ann(2, [30, 2, 7, 8], uncompressed(rect)),
        ann(3, [2, 20, 11, 9], compressed),
        ann(4, [14, 14, 5, 5], []),                         # a box without a mask
        ann(5, [0, 0, 40, 30], uncompressed(block(20, 0, 39, 29)), iscrowd=1)])
    imdb = open_dataset(path, "x")
    (e,) = imdb.gt_roidb()
    assert e["object_ids"].tolist() == [1, 2, 3, 4, 5]
    # kept as the JSON has them: lazy, not bitmaps
    assert e["segms"][0] == [TRIANGLE] and e["segms"][2]["counts"] == compressed["counts"]
    assert e["segms"][3] is None and has_masks(e)
    masks = instance_masks(e)
    assert masks.shape == (5, H, W) and masks.dtype == np.uint8
    # the reference: pycocotools' own annToMask through the COCO API
    coco = COCO(str(path))
    for k, a in enumerate(coco.loadAnns([1, 2, 3, 5])):
        np.testing.assert_array_equal(masks[[0, 1, 2, 4][k]], coco.annToMask(a))
    np.testing.assert_array_equal(masks[1], rect)
    np.testing.assert_array_equal(masks[2], ring)
    assert not masks[3].any()
    # a polygon's decoded area is pycocotools' area of it
    area = mask_util.area(mask_util.merge(mask_util.frPyObjects([TRIANGLE], H, W)))
    assert masks[0].sum() == area > 100
    # the crowd region keeps its mask (for evaluation); training leaves it out
    (train,) = without_difficult([e])
    assert train["object_ids"].tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(instance_masks(train), masks[:4])


def test_flipped_masks_mirror_and_match_flipped_boxes(tmp_path):
    path = coco_json(tmp_path, [ann(1, [5, 4, 21, 17], [TRIANGLE]),
                                ann(2, [30, 2, 7, 8], uncompressed(block(30, 2, 36, 9)))])
    e, f = training_roidb(open_dataset(path, "x"), use_flipped=True)
    assert f["flipped"] and f["segms"] == e["segms"]        # segms are not flipped themselves
    masks, mirrored = instance_masks(e), instance_masks(f)
    np.testing.assert_array_equal(mirrored, masks[:, :, ::-1])
    # the pixel convention: a mask spanning columns x1..x2 has the inclusive box [x1, x2]; the
    # flipped mask spans the flipped box
    for m, box in zip(mirrored[1:], f["boxes"][1:], strict=True):
        ys, xs = np.nonzero(m)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == box.tolist()


def test_imdb_operations_keep_segms_aligned(tmp_path):
    path = coco_json(tmp_path, [ann(1, [5, 4, 20, 16], [TRIANGLE], iscrowd=1),
                                ann(2, [30, 2, 7, 8], uncompressed(block(30, 2, 36, 9))),
                                ann(3, [2, 20, 11, 9], encode_rle(block(2, 20, 12, 28)))])
    roidb = training_roidb(open_dataset(path, "x"), use_flipped=True)
    kept = filter_roidb(without_difficult(roidb))
    assert len(kept) == 2
    for e in kept:
        assert len(e["segms"]) == len(e["boxes"]) == len(e["object_ids"]) == 2
        assert e["object_ids"].tolist() == [2, 3] and e["crowd"].tolist() == [False, False]
        masks = instance_masks(e)
        for m, box in zip(masks, e["boxes"], strict=True):
            ys, xs = np.nonzero(m)
            assert [xs.min(), ys.min(), xs.max(), ys.max()] == box.tolist()
    np.testing.assert_array_equal(instance_masks(kept[1]), instance_masks(kept[0])[:, :, ::-1])


def test_encode_rle_is_json_ready():
    mask = block(3, 4, 20, 10)
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [H, W]
    back = json.loads(json.dumps(rle))
    np.testing.assert_array_equal(mask_util.decode({**back, "counts": back["counts"].encode()}),
                                  mask)
    np.testing.assert_array_equal(decode_segm(back, H, W), mask)


def test_has_masks():
    assert not has_masks({"boxes": np.zeros((2, 4))})
    assert not has_masks({"boxes": np.zeros((2, 4)), "segms": [None, None]})
    assert not has_masks({"boxes": np.zeros((0, 4)), "segms": []})
    assert has_masks({"boxes": np.zeros((2, 4)), "segms": [None, [TRIANGLE]]})


def test_box_only_datasets_have_no_segms(tmp_path):
    path = coco_json(tmp_path, [ann(1, [5, 4, 20, 16])])
    (e,) = open_dataset(path, "x").gt_roidb()
    assert "segms" not in e and not has_masks(e)
    assert instance_masks(e).shape == (1, H, W) and not instance_masks(e).any()


# ---------------------------------------------------------------- VOC instance PNGs

def index_png(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(values, np.uint8))
    im.putpalette(voc_palette())
    im.save(path)
    return path


def voc_object(name, box, difficult=0):
    x1, y1, x2, y2 = (v + 1 for v in box)          # VOC pixels are 1-based
    return (f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
            f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
            "</bndbox></object>")


def voc_folder(root, objects, instances=None, classes=None, size=(W, H), name="a",
               xml=True, image=None):
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (image or Image.new("RGB", size)).save(root / "JPEGImages" / f"{name}.jpg")
    if xml:
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>"
            + "".join(voc_object(*o) for o in objects) + "</annotation>")
    if instances is not None:
        index_png(root / "SegmentationObject" / f"{name}.png", instances)
    if classes is not None:
        index_png(root / "SegmentationClass" / f"{name}.png", classes)
    (root / "classes.txt").write_text("dog\ncat\n")
    return root


def instance_map():
    """Three instances in XML order (dog, cat, dog), a void border round the first."""
    inst = np.zeros((H, W), np.uint8)
    inst[3:10, 4:15] = 255
    inst[4:9, 5:14] = 1
    inst[12:20, 20:31] = 2
    inst[22:29, 2:6] = 3
    inst[25, 3] = 0                                   # a hole
    return inst


VOC_OBJECTS = [("dog", (5, 4, 13, 8)), ("cat", (20, 12, 30, 19)), ("dog", (2, 22, 5, 28), 1)]


def test_voc_instance_png_round_trip(tmp_path):
    inst = instance_map()
    root = voc_folder(tmp_path / "voc", VOC_OBJECTS, inst)
    imdb = VOCDataset(root, "train")
    (e,) = imdb.gt_roidb()
    png = str(root / "SegmentationObject" / "a.png")
    assert e["segms"] == [{"png": png, "instance": k, "objects": 3} for k in (1, 2, 3)]
    masks = instance_masks(e)
    for k in range(3):             # the PNG's pixels of value k + 1; the void border is no one's
        np.testing.assert_array_equal(masks[k], inst == k + 1)
    # boxes from the XML; each mask spans its box exactly here
    for m, box in zip(masks, e["boxes"], strict=True):
        ys, xs = np.nonzero(m)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == box.tolist()
    np.testing.assert_array_equal(instance_masks(flipped([e])[0]), masks[:, :, ::-1])
    # to COCO JSON (compressed RLE) and back: pycocotools decodes the PNG's pixels
    path = write_coco(imdb, tmp_path / "voc.json")
    data = json.loads(path.read_text())
    assert [a["iscrowd"] for a in data["annotations"]] == [0, 0, 1]    # difficult -> crowd
    for k, a in enumerate(data["annotations"]):
        rle = {**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_util.decode(rle), inst == k + 1)
    (c,) = open_dataset(path, "x").gt_roidb()
    np.testing.assert_array_equal(instance_masks(c), masks)
    np.testing.assert_array_equal(c["boxes"], e["boxes"])


def test_voc_images_without_png_and_folders_without_masks(tmp_path, caplog):
    root = voc_folder(tmp_path / "v", VOC_OBJECTS[:2], instance_map())
    voc_folder(root, VOC_OBJECTS[:1], name="b")                 # no PNG for b
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    with caplog.at_level(logging.INFO):
        a, b = VOCDataset(root, "train").gt_roidb()
    assert has_masks(a) and b["segms"] == [None] and not has_masks(b)
    assert "1 of 3 objects have no instance mask" in caplog.text
    (plain,) = VOCDataset(voc_folder(tmp_path / "plain", VOC_OBJECTS), "train").gt_roidb()
    assert "segms" not in plain


@pytest.mark.parametrize("layout", ["SegmentationObject", "SegmentationObjectPNG"])
def test_labelme2voc_instances_without_xml(tmp_path, caplog, layout):
    """labelme2voc's instance segmentation export: JPEGImages, SegmentationObject(PNG),
    SegmentationClass(PNG), class_names.txt, no XML: boxes and classes from the masks."""
    root = tmp_path / "labelme"
    inst = instance_map()
    inst[0:2, 30:40] = 4                               # an instance with no class pixel
    cls = np.zeros((H, W), np.uint8)
    cls[inst == 1] = 2                                 # dog (class_names order)
    cls[inst == 2] = 1                                 # cat
    cls[inst == 3] = 2
    cls[inst == 255] = 255
    cls[12, 20] = 2                                    # one stray pixel of another class
    voc_folder(root, [], xml=False)
    (root / "classes.txt").unlink()
    (root / "class_names.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    kind = layout.replace("Object", "{}")
    index_png(root / kind.format("Object") / "a.png", inst)
    index_png(root / kind.format("Class") / "a.png", cls)
    with caplog.at_level(logging.WARNING):
        imdb = open_dataset(root, "train")
        (e,) = imdb.gt_roidb()
    png = root / layout / "a.png"
    assert imdb.classes == ("__background__", "cat", "dog")
    assert [imdb.classes[c] for c in e["gt_classes"]] == ["dog", "cat", "dog"]
    assert e["object_ids"].tolist() == [1, 2, 3] and not e["difficult"].any()
    np.testing.assert_array_equal(e["boxes"], [[5, 4, 13, 8], [20, 12, 30, 19],
                                               [2, 22, 5, 28]])
    masks = instance_masks(e)
    for k in range(3):
        np.testing.assert_array_equal(masks[k], inst == k + 1)
    assert warnings_naming(caplog, str(png), "instance 4 has no class", "left out")
    assert warnings_naming(caplog, str(png), "instance 2 also covers other classes")
    # a class index beyond the class list is an error naming the file
    cls[inst == 2] = 9
    index_png(root / kind.format("Class") / "a.png", cls)
    with pytest.raises(DatasetError, match=r"a\.png: instance 2 has class index 9, not among "
                                           r"the 2 classes"):
        open_dataset(root, "train").gt_roidb()
    # no class PNG and no XML: an error
    (root / kind.format("Class") / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"a\.png: no Annotations/a\.xml and no "
                                           r"SegmentationClass/a\.png"):
        open_dataset(root, "train").gt_roidb()


def test_instance_png_of_a_turned_image(tmp_path, caplog):
    """An image stored 40 x 30 with EXIF orientation 6 is shown 30 x 40 (its red corner at the
    top right). A PNG drawn on the image as shown is used as it is; one drawn on the stored
    pixels is turned like the image: either way the mask covers the red corner."""
    stored = Image.new("RGB", (W, H), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    on_stored = np.zeros((H, W), np.uint8)
    on_stored[0:8, 0:8] = 1
    on_shown = np.ascontiguousarray(np.rot90(on_stored, -1))       # 90 degrees clockwise
    for name, png in (("shown", on_shown), ("stored", on_stored)):
        root = tmp_path / name
        (root / "JPEGImages").mkdir(parents=True)
        stored.save(root / "JPEGImages" / "a.jpg", exif=exif, quality=100)
        (root / "Annotations").mkdir()
        (root / "Annotations" / "a.xml").write_text(
            f"<annotation><size><width>{H}</width><height>{W}</height></size>"
            + voc_object("dog", (22, 0, 29, 7)) + "</annotation>")
        (root / "classes.txt").write_text("dog\n")
        index_png(root / "SegmentationObject" / "a.png", png)
        (e,) = VOCDataset(root, "train").gt_roidb()
        assert e["segms"][0].get("orientation", 1) == (6 if name == "stored" else 1)
        (mask,) = instance_masks(e)
        red = read_image_bgr(e["image"], (e["width"], e["height"]))[:, :, 2] > 128
        assert mask.shape == red.shape == (W, H)
        np.testing.assert_array_equal(mask.astype(bool), red)
    # a square image: the PNG's size cannot tell: taken as drawn on the image as shown, warned
    root = tmp_path / "square"
    (root / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (H, H)).save(root / "JPEGImages" / "a.jpg", exif=exif)
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        f"<annotation><size><width>{H}</width><height>{H}</height></size>"
        + voc_object("dog", (0, 0, 7, 7)) + "</annotation>")
    (root / "classes.txt").write_text("dog\n")
    index_png(root / "SegmentationObject" / "a.png", on_stored[:, :H])
    with caplog.at_level(logging.WARNING):
        VOCDataset(root, "train").gt_roidb()
    assert warnings_naming(caplog, "a.png", "cannot tell on which pixels it was drawn")


# ---------------------------------------------------------------- COCO ground truth in memory

def test_coco_ground_truth_and_cocoeval(tmp_path):
    inst = instance_map()
    root = voc_folder(tmp_path / "voc", VOC_OBJECTS, inst)
    voc_folder(root, VOC_OBJECTS[:1], name="b")                # an object without a mask
    imdb = VOCDataset(root, "train")
    roidb = imdb.gt_roidb()
    gt = coco_ground_truth(roidb, imdb.classes)
    assert [i["id"] for i in gt["images"]] == [1, 2]
    assert gt["categories"] == [{"id": 1, "name": "dog", "supercategory": "object"},
                                {"id": 2, "name": "cat", "supercategory": "object"}]
    a1, a2, a3, b1 = gt["annotations"]
    assert a1["bbox"] == [5.0, 4.0, 9.0, 5.0] and a1["area"] == 45.0 and a1["iscrowd"] == 0
    assert a3["iscrowd"] == 1                                  # difficult
    for a, k in ((a1, 1), (a2, 2), (a3, 3)):
        np.testing.assert_array_equal(
            mask_util.decode({**a["segmentation"], "counts": a["segmentation"]["counts"]}),
            inst == k)
    # b's object has no mask: its box, as a crowd region
    assert b1["iscrowd"] == 1 and mask_util.area(b1["segmentation"]) == 45
    json.dumps(gt)
    by_mask = coco_ground_truth(roidb, imdb.classes, area="mask")["annotations"]
    assert by_mask[0]["area"] == float((inst == 1).sum())
    # an entry's own "id" is kept
    ids = coco_ground_truth([{**roidb[0], "id": 42}], imdb.classes)["images"]
    assert ids[0]["id"] == 42
    # perfect mask detections score AP 1 with COCOeval segm
    coco = COCO()
    coco.dataset = gt
    quietly(coco.createIndex)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "segmentation": a["segmentation"], "score": 0.9}
               for a in gt["annotations"] if not a["iscrowd"]]
    segm = cocoeval(coco, results, [1, 2], imdb.classes, [1, 2], iou_type="segm")
    assert segm["mean"]["ap"] == pytest.approx(1.0)


# ---------------------------------------------------------------- bad input (item 10)

def test_polygon_with_fewer_than_3_points(tmp_path, caplog):
    path = coco_json(tmp_path, [
        ann(1, [5, 4, 21, 17], [[1, 1, 3, 3], TRIANGLE]),       # 2 points: not a bbox!
        ann(2, [5, 4, 21, 17], [[7, 7]]),
        ann(3, [5, 4, 21, 17], [[1, 2, 3]]),
        # what pycocotools would take minutes over, or choke on
        ann(4, [5, 4, 21, 17], [TRIANGLE[:4] + [float("nan"), 5]]),
        ann(5, [5, 4, 21, 17], [TRIANGLE[:4] + [1e12, 5]]),
        ann(6, [5, 4, 21, 17], [TRIANGLE[:4] + ["a", 5]])])
    with caplog.at_level(logging.WARNING):
        (e,) = open_dataset(path, "x").gt_roidb()
    assert e["segms"] == [[TRIANGLE]] + [None] * 5 and len(e["boxes"]) == 6
    where = f"{path} (image 7, a.jpg): annotation"
    assert warnings_naming(caplog, f"{where} 1:", "polygon 1 has 2 points (fewer than 3)",
                           "1 polygon kept")
    assert warnings_naming(caplog, f"{where} 2:", "polygon 1 has 1 point (fewer than 3)",
                           "no polygon left: no mask (box kept)")
    assert warnings_naming(caplog, f"{where} 3:", "odd number of coordinates")
    assert warnings_naming(caplog, f"{where} 4:", "NaN or infinite coordinates")
    assert warnings_naming(caplog, f"{where} 5:", "coordinates far outside the image (from 4 "
                                                  "to 1e+12)")
    assert warnings_naming(caplog, f"{where} 6:", "polygon 1 is not a list of numbers")


def test_rle_of_another_size(tmp_path, caplog):
    small = mask_util.encode(np.asfortranarray(np.ones((10, 10), np.uint8)))
    small["counts"] = small["counts"].decode()
    path = coco_json(tmp_path, [ann(1, [0, 0, 10, 10], small),
                                ann(2, [0, 0, 10, 10], {"size": [H, W], "counts": [5, 10]}),
                                ann(3, [0, 0, 10, 10], {"size": [H, W], "counts": [1.5, 1198.5]}),
                                ann(4, [0, 0, 10, 10], {"size": [W, H], "counts": "abc"})])
    with caplog.at_level(logging.WARNING):
        (e,) = open_dataset(path, "x").gt_roidb()
    assert e["segms"] == [None] * 4 and len(e["boxes"]) == 4
    assert warnings_naming(caplog, "annotation 1:", "RLE is 10 x 10 (width x height) but the "
                           "image is 40 x 30: no mask (box kept)")
    assert warnings_naming(caplog, "annotation 2:", "RLE counts add up to 15, not 40 x 30")
    assert warnings_naming(caplog, "annotation 3:", "RLE counts are not all non-negative "
                                                    "integers")
    assert warnings_naming(caplog, "annotation 4:", "RLE is 30 x 40 (width x height) but the "
                                                    "image is 40 x 30")


def test_compressed_rle_that_does_not_cover_the_image(tmp_path, caplog):
    short = mask_util.frPyObjects({"size": [H, W], "counts": [3, 20]}, H, W)   # 23 of 1200
    path = coco_json(tmp_path, [ann(1, [0, 3, 1, 10],
                                    {"size": [H, W], "counts": short["counts"].decode()})])
    (e,) = open_dataset(path, "x").gt_roidb()
    assert e["segms"][0] is not None                 # only decoding can tell
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert not instance_masks(e).any()
    assert len(warnings_naming(caplog, "annotation 1:", "the RLE's counts do not cover")) == 1
    assert e["segms"] == [None]


def test_instance_png_of_another_size(tmp_path, caplog):
    root = voc_folder(tmp_path / "v", VOC_OBJECTS, np.zeros((H + 1, W), np.uint8))
    with caplog.at_level(logging.WARNING):
        (e,) = VOCDataset(root, "train").gt_roidb()
    assert e["segms"] == [None, None, None] and len(e["boxes"]) == 3
    assert warnings_naming(caplog, str(root / "SegmentationObject" / "a.png"),
                           "is 40 x 31 but the image a.jpg is 40 x 30",
                           "3 objects have no masks (boxes kept)")
    # without an XML the PNG is the only annotation: an error
    bare = voc_folder(tmp_path / "bare", [], np.zeros((H + 1, W), np.uint8),
                      np.zeros((H + 1, W), np.uint8), xml=False)
    with pytest.raises(DatasetError, match=r"a\.png: the instance PNG is 40 x 31 but the "
                                           r"image a\.jpg is 40 x 30"):
        VOCDataset(bare, "train").gt_roidb()


def test_instance_png_that_is_not_an_index_image(tmp_path):
    root = voc_folder(tmp_path / "v", VOC_OBJECTS)
    (root / "SegmentationObject").mkdir()
    Image.new("RGB", (W, H)).save(root / "SegmentationObject" / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png: a RGB image, not an index PNG"):
        VOCDataset(root, "train").gt_roidb()


def test_empty_mask_warned_once_per_instance(tmp_path, caplog):
    inst = instance_map()
    inst[inst == 2] = 0                                # the cat has no pixels
    root = voc_folder(tmp_path / "v", VOC_OBJECTS, inst)
    roidb = training_roidb(VOCDataset(root, "train"), use_flipped=True)
    train = filter_roidb(without_difficult(roidb))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):                             # epochs, the flipped copy included
            for e in train:
                masks = instance_masks(e)
                assert not masks[1].any() and masks[0].any()
        assert not instance_masks(roidb[0])[1].any()   # another copy of the entry
    png = str(root / "SegmentationObject" / "a.png")
    assert len(warnings_naming(caplog, f"{png}: instance 2: the mask is empty: no mask "
                                       "(box kept)")) == 1
    # the decoded entries say so (their readers tell a dropped mask from an empty one)
    assert all(e["segms"][1] is None and len(e["boxes"]) == 2 for e in train)
    assert roidb[0]["segms"][1] is None and len(roidb[0]["boxes"]) == 3


def test_instance_value_without_an_object(tmp_path, caplog):
    inst = instance_map()
    inst[0:2, 30:40] = 5                               # the XML has 3 objects
    root = voc_folder(tmp_path / "v", VOC_OBJECTS, inst)
    (e,) = VOCDataset(root, "train").gt_roidb()
    with caplog.at_level(logging.WARNING):
        instance_masks(e)
        instance_masks(e)
    png = str(root / "SegmentationObject" / "a.png")
    assert len(warnings_naming(caplog, f"{png}: instance value 5 has no object (and so no "
                                       "class)", "a.xml (3 objects)")) == 1
    # the objects left out by without_difficult are not "without an object"
    caplog.clear()
    inst[0:2, 30:40] = 0
    root = voc_folder(tmp_path / "w", VOC_OBJECTS, inst)
    (e,) = without_difficult(VOCDataset(root, "train").gt_roidb())
    with caplog.at_level(logging.WARNING):
        instance_masks(e)
    assert not warnings_naming(caplog, "no object")


def test_mask_far_outside_its_box(tmp_path, caplog):
    path = coco_json(tmp_path, [ann(1, [30, 20, 8, 8], [TRIANGLE]),   # the triangle is top left
                                ann(2, [4, 3, 23, 19], [TRIANGLE])])
    (e,) = open_dataset(path, "x").gt_roidb()
    with caplog.at_level(logging.WARNING):
        masks = instance_masks(e)
        instance_masks(flipped([e])[0])
    assert not masks[0].any() and masks[1].any() and e["segms"][0] is None
    (message,) = warnings_naming(caplog, "annotation 1:")
    assert "only 0% of the mask's" in message and "lie in or near its box" in message


# ---------------------------------------------------------------- the synthetic set

@pytest.mark.parametrize("spec", [SyntheticSpec(image_size=96, seed=5),
                                  preset("multiscale", seed=2)])
def test_synthetic_masks_fill_their_boxes(tmp_path, spec):
    root = generate(tmp_path, 2, 3, spec)
    assert json.loads((root / "synthetic.json").read_text())["settings"]["instance_masks"]
    fill = {c: [] for c in CLASSES}
    for split in ("train", "test"):
        imdb = VOCDataset(root, split)
        voc = imdb.gt_roidb()
        coco = open_dataset(root / f"{split}.json", split).gt_roidb()
        for v, c in zip(voc, coco, strict=True):
            masks = instance_masks(v)
            assert has_masks(v) and all(s is not None for s in v["segms"])
            np.testing.assert_array_equal(instance_masks(c), masks)     # JSON RLE == PNGs
            for m, box, cls in zip(masks, v["boxes"], v["gt_classes"], strict=True):
                ys, xs = np.nonzero(m)
                # inside the box and touching its four sides
                assert [xs.min(), ys.min(), xs.max(), ys.max()] == box.tolist()
                fill[imdb.classes[cls]].append(m.sum() / ((box[2] - box[0] + 1)
                                                          * (box[3] - box[1] + 1)))
            cls_png = np.asarray(Image.open(root / "SegmentationClass"
                                            / f"{v['index']}.png"))
            for m, cls in zip(masks, v["gt_classes"], strict=True):
                assert (cls_png[m > 0] == cls).all()
    assert all(f == 1.0 for f in fill["square"])
    for name, lo, hi in (("circle", 0.6, 0.9), ("triangle", 0.4, 0.7), ("cross", 0.3, 0.7)):
        assert all(lo < f < hi for f in fill[name]), (name, fill[name])


def test_synthetic_images_unchanged_by_masks():
    """Drawing the masks takes no random draw and changes no pixel: the same image and
    generator state with and without them, and the masks are exactly the drawn pixels."""
    for spec in (SyntheticSpec(image_size=128, seed=4), preset("multiscale", seed=4)):
        rng_a, rng_b = np.random.default_rng(spec.seed), np.random.default_rng(spec.seed)
        for _ in range(3):
            masks = []
            im_a, objects_a = make_image(rng_a, spec)
            bg_rng = np.random.default_rng()           # the background make_image draws first
            bg_rng.bit_generator.state = rng_b.bit_generator.state
            background = _background(bg_rng, spec.image_size)
            im_b, objects_b = make_image(rng_b, spec, masks)
            assert objects_a == objects_b
            assert rng_a.bit_generator.state == rng_b.bit_generator.state
            pixels = np.asarray(im_a)
            np.testing.assert_array_equal(pixels, np.asarray(im_b))
            drawn = (pixels != background).any(axis=2)
            union = np.any(masks, axis=0)
            np.testing.assert_array_equal(union, drawn)
            for m in masks:                  # each object is one colour
                assert len(np.unique(pixels[m > 0], axis=0)) == 1


def test_synthetic_stamp_regenerates_old_folders(tmp_path):
    spec = SyntheticSpec(image_size=64, seed=1)
    root = generate(tmp_path, 1, 1, spec)
    stamp = json.loads((root / "synthetic.json").read_text())
    del stamp["settings"]["instance_masks"]            # a folder written before masks
    (root / "synthetic.json").write_text(json.dumps(stamp))
    for png in (root / "SegmentationObject").glob("*.png"):
        png.unlink()
    generate(tmp_path, 1, 1, spec)
    assert len(list((root / "SegmentationObject").glob("*.png"))) == 2


def test_hand_made_entries_are_checked_each_time(caplog):
    """Entries built by hand (no "source" / "object_ids"): a mask dropped in one entry is not
    remembered for another that happens to have the same name."""
    far = {"boxes": np.array([[30.0, 20, 37, 27]]), "segms": [[TRIANGLE]], "width": W,
           "height": H}
    near = {"boxes": np.array([[5.0, 4, 25, 20]]), "segms": [[TRIANGLE]], "width": W,
            "height": H}
    with caplog.at_level(logging.WARNING):
        assert not instance_masks(far).any() and far["segms"] == [None]
        assert instance_masks(near).any() and near["segms"] == [[TRIANGLE]]
    assert len(warnings_naming(caplog, "object 1", "lie in or near its box")) == 1


def test_voc2012_segmentation_image_sets(tmp_path):
    """Without ImageSets/Main/, --imageset train reads ImageSets/Segmentation/train.txt (VOC2012's
    list of the images with masks)."""
    root = voc_folder(tmp_path / "v", VOC_OBJECTS, instance_map())
    voc_folder(root, VOC_OBJECTS[:1], name="b")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")
    imdb = VOCDataset(root, "train")
    assert imdb.image_index == ["a"] and has_masks(imdb.gt_roidb()[0])
