"""The small Mask R-CNN end to end: its nets, a batch without foreground RoIs, the mask loss
falling in a short run, test_net's segm evaluation against pycocotools' COCOeval, the masks
in pictures, and swap_roi's ROIPooling twin."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import MASK_VARIANTS, SMALL_CONFIG, write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("data"), 12, 4, SyntheticSpec(seed=5))


@pytest.fixture(scope="module")
def nets(tmp_path_factory, caffe):
    return write_small_models(tmp_path_factory.mktemp("models"), 5, list(MASK_VARIANTS))


def _train_net(caffe, nets, variant, data, **train_cfg):
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb

    config = load(SMALL_CONFIG, {"TRAIN": train_cfg} if train_cfg else {})
    activate(config)
    net = caffe.Net(str(nets[variant]["train"]), caffe.TRAIN)
    net.layers[0].set_roidb(train_roidb(open_dataset(data, "train"), False))
    return net


def test_swap_roi_makes_the_roipooling_twin(nets, tmp_path):
    from rcnn.tools import swap_roi

    out = tmp_path / "swapped.prototxt"
    assert swap_roi.main([str(nets["mask_roialign"]["train"]), str(out),
                          "--to", "ROIPooling"]) == 0
    ours = [x for x in out.read_text().splitlines() if not x.startswith("#")]
    twin = nets["mask_roipooling"]["train"].read_text().splitlines()
    assert [(a, b) for a, b in zip(ours, twin, strict=True) if a != b] == [
        ('name: "small_mask_rcnn_roialign"', 'name: "small_mask_rcnn_roipooling"')]


@pytest.mark.parametrize("variant", list(MASK_VARIANTS))
def test_train_net_gives_mask_targets_of_the_foreground_rois(caffe, nets, tiny_data, variant):
    net = _train_net(caffe, nets, variant, tiny_data)
    net.forward()
    labels = net.blobs["labels"].data
    fg = int((labels > 0).sum())
    assert fg > 0
    assert net.blobs["mask_rois"].data.shape == (fg, 5)
    assert net.blobs["mask_logits"].data.shape == (fg, 5, 28, 28)
    targets = net.blobs["mask_targets"].data
    assert targets.shape == (fg, 5, 28, 28)
    for k, c in enumerate(labels[labels > 0].astype(int)):
        assert set(np.unique(targets[k, c])) <= {0.0, 1.0} and targets[k, c].any()
        assert (np.delete(targets[k], c, axis=0) == -1).all()
    assert np.isfinite(float(net.blobs["loss_mask"].data)) and net.blobs["loss_mask"].data > 0


def test_a_batch_without_foreground_rois_trains(caffe, nets, tiny_data):
    """FG_FRACTION 0: no foreground RoI, so the mask branch runs on zero rows. The mask loss
    is 0 and the mask branch's gradients are zero, forward and backward (no dummy RoI).
    Caffe accumulates parameter gradients into diff (the solver clears it before each
    iteration), so a zero gradient leaves the 1.0 set here as it is."""
    net = _train_net(caffe, nets, "mask_roialign", tiny_data, FG_FRACTION=0.0)
    for p in net.params.values():
        for b in p:
            b.diff[...] = 1.0
    net.forward()
    net.backward()
    assert net.blobs["mask_rois"].data.shape == (0, 5)
    assert net.blobs["mask_logits"].data.shape == (0, 5, 28, 28)
    assert float(net.blobs["loss_mask"].data) == 0.0
    assert np.isfinite(float(net.blobs["loss_cls"].data))
    for name in ("mask_reduce", "mask_conv1", "mask_conv2", "mask_deconv", "mask_logits"):
        for b in net.params[name]:
            assert (b.diff == 1.0).all(), name


def test_mask_loss_falls_and_test_net_scores_masks_with_cocoeval(caffe, nets, tiny_data,
                                                                tmp_path):
    from rcnn.tools import demo, test_net, train_net

    out = tmp_path / "run"
    assert train_net.main(["--net", str(nets["mask_roialign"]["train"]), "--data",
                           str(tiny_data), "--cfg", CFG, "--out", str(out), "--iters", "150",
                           "--display", "40"]) == 0
    log = [json.loads(x) for x in (out / "loss_log.jsonl").read_text().splitlines()]
    mask_loss = np.array([r["loss_mask"] for r in log])
    print("mask loss, first 10 / last 30 iterations:", mask_loss[:10].mean(),
          mask_loss[-30:].mean())
    assert mask_loss[-30:].mean() < 0.8 * mask_loss[:10].mean()
    results = tmp_path / "results.json"
    weights = out / "model_iter_150.caffemodel"
    assert test_net.main(["--net", str(nets["mask_roialign"]["test"]), "--weights",
                          str(weights), "--data", str(tiny_data), "--cfg", CFG,
                          "--out", str(results)]) == 0
    r = json.loads(results.read_text())
    assert set(r["mask"]["mean"]) >= {"ap", "ap50", "ap75", "aps", "apm", "apl"}
    segmented = 0
    for index, dets in r["detections"].items():
        assert len(r["masks"][index]) == len(dets)
        for d, m in zip(dets, r["masks"][index], strict=True):   # [class, x1, ..., score]
            assert (m is None) == (d[5] < 0.05)   # TEST.MASK_SCORE_THRESH
            if m is not None:
                assert m["size"] == [256, 256] and isinstance(m["counts"], str)
                segmented += 1
    assert segmented > 0
    # the same test images as a COCO JSON (RLE segmentations): the same masks and figures
    coco_results = tmp_path / "coco_results.json"
    assert test_net.main(["--net", str(nets["mask_roialign"]["test"]), "--weights",
                          str(weights), "--data", str(Path(tiny_data) / "test.json"),
                          "--cfg", CFG, "--out", str(coco_results)]) == 0
    c = json.loads(coco_results.read_text())
    assert c["evaluation"] == "cocoeval"
    assert c["mask"]["mean"] == pytest.approx(r["mask"]["mean"], abs=1e-12)
    assert [c["masks"][f"JPEGImages/{k}.jpg"] for k in r["masks"]] == list(r["masks"].values())
    png = tmp_path / "masks.png"
    assert demo.main(["--net", str(nets["mask_roialign"]["test"]), "--weights", str(weights),
                      "--data", str(tiny_data), "--cfg", CFG, "--count", "2", "--thresh",
                      "0.0", "--out", str(png)]) == 0
    assert png.is_file()


def test_segm_evaluation_equals_cocoeval_on_the_written_json(tiny_data):
    """Our segm figures (ground truth converted in memory) against pycocotools run by hand
    on the dataset's own COCO JSON, for perfect and for degraded mask detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from rcnn.datasets import open_dataset
    from rcnn.datasets.coco import quietly
    from rcnn.datasets.masks import encode_rle, instance_masks
    from rcnn.pipeline import Detections, evaluate_masks

    imdb = open_dataset(tiny_data, "test")
    roidb = imdb.gt_roidb()
    rng = np.random.default_rng(0)
    for degrade in (False, True):
        boxes = [[np.zeros((0, 5), np.float32) for _ in roidb] for _ in imdb.classes]
        masks = [[[] for _ in roidb] for _ in imdb.classes]
        for i, e in enumerate(roidb):
            gt = instance_masks(e)
            for k, c in enumerate(e["gt_classes"]):
                m = gt[k].copy()
                if degrade:   # shift by a few pixels, drop some
                    m = np.roll(m, int(rng.integers(0, 4)), axis=1)
                    if rng.random() < 0.2:
                        continue
                score = float(rng.random())
                boxes[c][i] = np.vstack([boxes[c][i], [*e["boxes"][k], score]])
                masks[c][i].append(encode_rle(m))
        ours = evaluate_masks(imdb, roidb, Detections(boxes, masks, 0.0))["mean"]
        coco = COCO(str(Path(tiny_data) / "test.json"))
        name_to_image = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
        results = []
        for c in range(1, imdb.num_classes):
            for i, e in enumerate(roidb):
                image_id = name_to_image[f"JPEGImages/{e['index']}.jpg"]
                for d, m in zip(boxes[c][i], masks[c][i], strict=True):
                    results.append({"image_id": image_id, "category_id": c,
                                    "segmentation": m, "score": float(d[4])})
        ev = COCOeval(coco, quietly(coco.loadRes, results), "segm")
        quietly(ev.evaluate)
        quietly(ev.accumulate)
        quietly(ev.summarize)
        assert ours["ap"] == pytest.approx(ev.stats[0], abs=1e-12)
        assert ours["ap75"] == pytest.approx(ev.stats[2], abs=1e-12)
        if not degrade:
            assert ours["ap"] == pytest.approx(1.0)


def test_mask_targets_refuse_non_finite_input(caffe, nets, tiny_data):
    from rcnn.layers.finite import NonFiniteInput

    net = _train_net(caffe, nets, "mask_roialign", tiny_data)
    net.forward()
    layer = net.layers[list(net._layer_names).index("mask-data")]
    net.blobs["rois"].data[0, 1] = np.nan
    with pytest.raises(NonFiniteInput, match="MaskTargetLayer: input rois has 1 non-finite"):
        layer.forward([net.blobs[b] for b in ("rois", "labels", "gt_boxes", "gt_masks",
                                              "im_info")],
                      [net.blobs["mask_rois"], net.blobs["mask_targets"]])
