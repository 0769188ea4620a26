"""Training and evaluating a detector: the steps that the tools (train_net, test_net, demo), the
main job (run_demo) and the accuracy benchmark (bench.detect) share. Every function takes the
config it runs with; it is made the active config (what the nets' Python layers read) right
before a net is built."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rcnn.config import AttrDict, activate, pixel_means

log = logging.getLogger(__name__)


@dataclass
class TrainSpec:
    """What to train, on what, for how long, and where to write it."""

    net: Path                         # train prototxt
    data: str | Path                  # VOC-format folder or COCO-format JSON
    out: Path                         # weights, loss log, solver state
    iters: int
    imageset: str = "train"           # VOC: an ImageSets/Main name or a list file
    image_root: Path | None = None    # COCO: where the images are (default: the JSON's folder)
    test_data: str | Path | None = None   # train_and_evaluate's test set (default: data's
                                          # "test" image set; for a COCO JSON, data itself)
    prefix: str = "model"             # <out>/<prefix>_iter_N.caffemodel
    solver: Path | None = None        # solver template (default: Adam, lr 0.001)
    lr: float | None = None           # base_lr override
    stepsize: int | None = None       # lr x 0.1 every stepsize iterations
    weights: Path | None = None       # initial weights
    resume: Path | None = None        # a .solverstate to continue from
    display: int = 50                 # progress line every N iterations
    snapshot_iters: int = 0           # resumable snapshot every N iterations (0: at the end)
    gpu: int | None = None            # GPU id on a CUDA build; CPU when None

    def final_weights(self) -> Path:
        return self.out / f"{self.prefix}_iter_{self.iters}.caffemodel"


def train(config: AttrDict, spec: TrainSpec) -> Path:
    """Trains spec.net and returns the final weights' path. Raises training.TrainingStopped
    when stopped early (Ctrl-C, non-finite loss) after saving what it could."""
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.runtime import seed_everything, set_device
    from rcnn.training import Trainer, write_solver

    spec.out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.RNG_SEED)
    device = set_device(spec.gpu)
    overrides: dict[str, Any] = {}
    if spec.lr:
        overrides["base_lr"] = spec.lr
    if spec.stepsize:
        overrides.update(lr_policy="step", gamma=0.1, stepsize=spec.stepsize)
    solver = write_solver(spec.solver, spec.net, spec.out, spec.prefix, overrides)
    imdb = open_dataset(spec.data, spec.imageset, spec.image_root)
    roidb = train_roidb(imdb, config.TRAIN.USE_FLIPPED)
    log.info("training %s on %s for %d iterations (%s)", spec.net, spec.data, spec.iters,
             device)
    activate(config)
    trainer = Trainer(solver, roidb, spec.out, spec.prefix, config.TRAIN, spec.weights,
                      spec.resume, seed=config.RNG_SEED)
    check_class_count(trainer.net, imdb.num_classes, str(spec.net), f"{spec.data}")
    return trainer.train(spec.iters, spec.display, spec.snapshot_iters)


def check_class_count(net, num_classes: int, where: str, dataset: str) -> None:
    """A ValueError naming both counts when a net's classifier (cls_score) does not have the
    dataset's number of classes (background included): a net made for another dataset
    (python -m rcnn.models OUT --num-classes N makes the small models for N)."""
    if "cls_score" not in net.params:
        return
    out = int(net.params["cls_score"][0].data.shape[0])
    if out != num_classes:
        raise ValueError(f"{where}: the net classifies {out} classes (background included) but "
                         f"{dataset} has {num_classes}; make the net for this dataset (python "
                         f"-m rcnn.models OUT --num-classes {num_classes}, or num_output of "
                         "cls_score and bbox_pred and the Python layers' num_classes)")


@dataclass
class Detections:
    """A test net's output over a dataset: boxes[c][i], (K, 5) [x1, y1, x2, y2, score] of
    class c in image i (image coordinates); for a Mask R-CNN masks[c][i], the K detections'
    masks as COCO RLE (None for a detection under TEST.MASK_SCORE_THRESH; masks is None for
    a net without a mask branch); mean seconds per image."""

    boxes: list[list[np.ndarray]]
    masks: list[list[list[dict[str, Any] | None]]] | None
    seconds_per_image: float


def detect_dataset(net, roidb: list[dict[str, Any]], num_classes: int, test: AttrDict,
                   means: np.ndarray, log_every: int = 50) -> Detections:
    """Detections (and, for a net with a mask branch, their masks) over the roidb's images,
    read as the dataset reader sees them (EXIF orientation, any colour mode). With
    test.SLICE_SIZE > 0, images with a side over it are detected by sliced inference
    (rcnn.sliced: windows at native resolution, merged), with a progress line per image
    giving its window count."""
    from rcnn.datasets.images import read_image_bgr
    from rcnn.datasets.masks import encode_rle
    from rcnn.inference import detections_per_class, im_detect, im_segment, mask_branch_start
    from rcnn.progress import Progress
    from rcnn.sliced import check_slice_config, full_masks, needs_slicing
    from rcnn.sliced import detect_image as detect_sliced

    slicing = int(test.SLICE_SIZE) > 0
    if slicing:
        check_slice_config(test)
    boxes: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    masks = [[] for _ in range(num_classes)] if mask_branch_start(net) is not None else None
    progress = Progress(len(roidb))
    t0 = time.monotonic()
    for i, e in enumerate(roidb):
        im = read_image_bgr(e["image"], (e["width"], e["height"]))
        height, width = im.shape[:2]
        if slicing and needs_slicing(height, width, int(test.SLICE_SIZE)):
            sliced = detect_sliced(net, im, test, means, test.MASK_SCORE_THRESH
                                   if masks is not None else None, name=str(e["image"]))
            dets = sliced.found.dets
            segmented = (full_masks(sliced.found.masks, height, width, encode_rle)
                         if masks is not None and sliced.found.masks is not None else None)
            how = sliced.describe(int(test.SLICE_SIZE))
        else:
            dets = detections_per_class(*im_detect(net, im, test, means), test)
            segmented = (im_segment(net, dets, height, width, test.MASK_SCORE_THRESH,
                                    encode=encode_rle) if masks is not None else None)
            how = "whole image"
        for c, d in enumerate(dets):
            boxes[c].append(d)
        if masks is not None and segmented is not None:
            for c, ms in enumerate(segmented):
                masks[c].append(ms)
        if slicing:
            log.info("im_detect %s (%d x %d): %s, %d detections | %s", e["image"], width,
                     height, how, sum(len(d) for d in dets[1:]), progress.line(i + 1))
        elif (i + 1) % log_every == 0 or i + 1 == len(roidb):
            log.info("im_detect %s", progress.line(i + 1))
    return Detections(boxes, masks, (time.monotonic() - t0) / max(len(roidb), 1))


def detect_and_evaluate(config: AttrDict, net: Path, weights: Path, data: str | Path,
                        imageset: str = "test", max_images: int = 0,
                        with_detections: bool = True, gpu: int | None = None,
                        image_root: Path | None = None) -> dict[str, Any]:
    """Runs the test net over a dataset (a VOC image set, or a COCO JSON) and evaluates its
    detections: per-class and mean AP figures, seconds per image and (with_detections) every
    detection, as test_net's JSON holds them. VOC data: our VOC and COCO-style AP; COCO data:
    "mean" is pycocotools' COCOeval (AP, AP50, AP75, APs, APm, APl, ARs), ours beside it."""
    import caffe

    from rcnn.datasets import open_dataset
    from rcnn.datasets.coco import COCODataset
    from rcnn.evaluation import coco_results, cocoeval, evaluate
    from rcnn.runtime import set_device

    imdb = open_dataset(data, imageset, image_root)
    roidb = imdb.gt_roidb()
    if max_images:
        roidb = roidb[:max_images]
    device = set_device(gpu)
    activate(config)
    test_net = caffe.Net(str(net), caffe.TEST, weights=str(weights))
    check_class_count(test_net, imdb.num_classes, str(net), f"{data}")
    log.info("testing %s on %d images of %s (%s)", weights, len(roidb), imdb.name, device)
    found = detect_dataset(test_net, roidb, imdb.num_classes, config.TEST, pixel_means(config))
    all_dets, sec = found.boxes, found.seconds_per_image
    metrics = evaluate(all_dets, roidb, imdb.classes)
    m = metrics["mean"]
    log.info("AP %.3f | AP50 %.3f | AP75 %.3f | VOC07 AP50 %.3f | APs %.3f | APm %.3f | "
             "APl %.3f | %.3f s/image", m["ap"], m["ap50"], m["ap75"], m["voc07_ap50"],
             m["aps"], m["apm"], m["apl"], sec)
    for name, r in metrics["per_class"].items():
        log.info("  %-12s AP %.3f AP50 %.3f AP75 %.3f (%d objects)", name, r["ap"], r["ap50"],
                 r["ap75"], r["num_gt"])
    result = {"net": str(net), "weights": str(weights), "dataset": imdb.name,
              "num_images": len(roidb), "seconds_per_image": sec, "evaluation": "voc",
              **metrics}
    if int(config.TEST.SLICE_SIZE) > 0:
        result["slice"] = {k[len("SLICE_"):].lower(): config.TEST[k]
                           for k in ("SLICE_SIZE", "SLICE_OVERLAP", "SLICE_FULL_IMAGE",
                                     "SLICE_MERGE", "SLICE_MERGE_IOU")}
    if isinstance(imdb, COCODataset):
        coco = cocoeval(imdb.coco, coco_results(all_dets, roidb, imdb.category_ids),
                        [e["id"] for e in roidb], imdb.classes, imdb.category_ids)
        c = coco["mean"]
        log.info("COCOeval: AP %.3f | AP50 %.3f | AP75 %.3f | APs %.3f | APm %.3f | APl %.3f",
                 c["ap"], c["ap50"], c["ap75"], c["aps"], c["apm"], c["apl"])
        result.update(evaluation="cocoeval", mean=c, cocoeval_per_class=coco["per_class"],
                      ours_mean=metrics["mean"])
    if found.masks is not None:
        from rcnn.datasets.masks import has_masks

        if any(has_masks(e) for e in roidb):
            result["mask"] = evaluate_masks(imdb, roidb, found)
        else:
            log.warning("%s has no instance masks: the masks are not evaluated (box AP only)",
                        imdb.name)
    if with_detections:
        result["detections"] = {
            e["index"]: [[imdb.classes[c], *map(float, d)] for c in range(1, imdb.num_classes)
                         for d in all_dets[c][i]] for i, e in enumerate(roidb)}
        if found.masks is not None:
            result["masks"] = {e["index"]: [m for c in range(1, imdb.num_classes)
                                            for m in found.masks[c][i]]
                               for i, e in enumerate(roidb)}
    return result


def evaluate_masks(imdb, roidb: list[dict[str, Any]], found: Detections) -> dict[str, Any]:
    """pycocotools' COCOeval segm of found.masks against the dataset's instance masks: its
    12 summary figures ("mean") and per-class AP. Any dataset (a COCO JSON, VOC instance
    PNGs, the synthetic set) is scored against its roidb converted to COCO in memory
    (rcnn.datasets.coco.coco_ground_truth: every form decoded and checked the way training
    reads it, crowd and difficult objects as crowd regions, object sizes by mask area as
    COCO's own annotations give them)."""
    from pycocotools.coco import COCO

    from rcnn.datasets.coco import coco_ground_truth, quietly
    from rcnn.evaluation import cocoeval
    from rcnn.masks.evaluation import segm_results

    coco = COCO()
    coco.dataset = coco_ground_truth(roidb, imdb.classes, area="mask")
    quietly(coco.createIndex)
    ids = [img["id"] for img in coco.dataset["images"]]
    category_ids = list(range(1, imdb.num_classes))
    results = segm_results(found.boxes, found.masks, ids, category_ids)
    segm = cocoeval(coco, results, ids, imdb.classes, category_ids, iou_type="segm")
    m = segm["mean"]
    log.info("mask AP %.3f | AP50 %.3f | AP75 %.3f | APs %.3f | APm %.3f | APl %.3f",
             m["ap"], m["ap50"], m["ap75"], m["aps"], m["apm"], m["apl"])
    return segm


def write_json(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    log.info("wrote %s", path)
    return path


@dataclass
class Run:
    """What train_and_evaluate did: the weights, the results (test_net's JSON) and the
    seconds each step took (0 for a step skipped because it was already done)."""

    weights: Path
    results: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def train_and_evaluate(config: AttrDict, spec: TrainSpec, test_net: Path, results: Path,
                       with_detections: bool = True, reuse_results: bool = False) -> Run:
    """Trains (skipped when the final weights are there; resumed from the newest snapshot in
    spec.out when there is one and spec.resume is not given), then evaluates on the dataset's
    test set and writes the results to `results`. With reuse_results, results already there
    are returned as they are."""
    from rcnn.training import latest_state

    final = spec.final_weights()
    if reuse_results and results.is_file() and final.is_file():
        log.info("results present: %s", results)
        return Run(final, json.loads(results.read_text()), {"train": 0.0, "test": 0.0})
    seconds = {}
    t = time.monotonic()
    if final.is_file():
        log.info("trained model present: %s", final)
    else:
        if spec.resume is None:
            spec = replace(spec, resume=latest_state(spec.out, spec.prefix))
        final = train(config, spec)
    seconds["train"] = time.monotonic() - t
    t = time.monotonic()
    test_data = spec.test_data or spec.data
    result = detect_and_evaluate(config, test_net, final, test_data,
                                 with_detections=with_detections, gpu=spec.gpu,
                                 image_root=spec.image_root)
    write_json(result, results)
    seconds["test"] = time.monotonic() - t
    return Run(final, result, seconds)


def _drawn(dets: np.ndarray, thresh: float) -> np.ndarray:
    """Which of (K, 5) detections are drawn: those scoring at least thresh, less the boxes
    decoded narrower than a pixel (x2 < x1, as a barely trained net's can be: nothing to
    draw)."""
    return ((dets[:, 4] >= thresh) & (dets[:, 2] >= dets[:, 0])
            & (dets[:, 3] >= dets[:, 1]))


def draw_detections_on(config: AttrDict, net: Path, weights: Path,
                       images: Sequence[tuple[str, np.ndarray | None]],
                       classes: Sequence[str] | None, thresh: float, out: Path,
                       gpu: int | None = None) -> Path:
    """One PNG, a grid of the images with the detections scoring at least thresh drawn in
    colour (and ground truth boxes, where given, in white); a Mask R-CNN's detections with
    their masks (a translucent fill and an outline). With config.TEST.SLICE_SIZE > 0, images
    with a side over it are detected by sliced inference (rcnn.sliced)."""
    import caffe
    from PIL import Image

    from rcnn.datasets.images import read_image_bgr
    from rcnn.inference import detections_per_class, im_detect, im_segment, mask_branch_start
    from rcnn.plots import draw_detections, grid
    from rcnn.runtime import set_device
    from rcnn.sliced import PastedMasks, check_slice_config, needs_slicing
    from rcnn.sliced import detect_image as detect_sliced

    slice_size = int(config.TEST.SLICE_SIZE)
    if slice_size > 0:
        check_slice_config(config.TEST)
    set_device(gpu)
    activate(config)
    test_net = caffe.Net(str(net), caffe.TEST, weights=str(weights))
    if classes:
        check_class_count(test_net, len(classes), str(net), "the class list")
    with_masks = mask_branch_start(test_net) is not None
    means = pixel_means(config)
    pictures = []
    for path, gt in images:
        im = read_image_bgr(path)
        how = ""
        if slice_size > 0 and needs_slicing(im.shape[0], im.shape[1], slice_size):
            # (every detection drawn is segmented: those scoring at least thresh)
            sliced = detect_sliced(test_net, im, config.TEST, means,
                                   thresh if with_masks else None, name=str(path))
            drawn = [_drawn(d, thresh) for d in sliced.found.dets]
            dets = [d[k] for d, k in zip(sliced.found.dets, drawn, strict=True)]
            masks = None
            if with_masks and sliced.found.masks is not None:
                # (pasted one at a time as they are drawn)
                masks = [PastedMasks([p for p, ok in zip(ms, k, strict=True) if ok],
                                     *im.shape[:2])
                         for ms, k in zip(sliced.found.masks[1:], drawn[1:], strict=True)]
            how = f" ({sliced.describe(slice_size)})"
        else:
            scores, boxes = im_detect(test_net, im, config.TEST, means)
            dets = detections_per_class(scores, boxes, config.TEST)
            dets = [d[_drawn(d, thresh)] for d in dets]
            # (every detection drawn is segmented: im_segment's score_thresh is 0)
            masks = im_segment(test_net, dets, *im.shape[:2])[1:] if with_masks else None
        names = classes or [f"class{c}" for c in range(len(dets))]
        shown = [(names[c], d) for c, d in enumerate(dets) if c > 0]
        log.info("%s%s: %d detections >= %.2f", path, how, sum(len(d) for _, d in shown),
                 thresh)
        # drawn on the pixels the detector saw (any bit depth, EXIF orientation applied)
        pictures.append(draw_detections(Image.fromarray(im[:, :, ::-1]), shown, gt,
                                        masks=masks))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(pictures).save(out)
    log.info("wrote %s", out)
    return out
