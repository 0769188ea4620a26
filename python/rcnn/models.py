"""Model definitions written with pycaffe's net_spec: one source for every RoI variant.

    python -m rcnn.models OUT_DIR     # writes the small model's prototxts for each variant
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# RoI layer variants of the small model: type and roi_pooling_param extras.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "roialign": ("ROIAlign", {}),
    "roialign_ave": ("ROIAlign", {"pool": 1, "alignment": 2, "sampling_ratio": 2}),
    "roipooling": ("ROIPooling", {}),
}

SMALL = {
    "convs": ((5, 32, 2), (3, 64, 1), (3, 96, 1), (3, 128, 1)),  # (kernel, channels, stride)
    "pools_after": (0, 1, 2),   # max-pool 2x2 after these convs: total stride 16
    "rpn_channels": 128,
    "fc": 256,
    "pooled": 5,
    "anchor_scales": (0.75, 1.5, 3),   # anchors of 12, 24 and 48 pixels
    "anchor_ratios": (0.5, 1, 2),
    "feat_stride": 16,
    "image_size": 256,
}


def _param_str(d: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"'{k}': {list(v) if isinstance(v, tuple) else v}"
                           for k, v in d.items()) + "}"


def _conv(L, bottom, name: str, k: int, n: int, stride: int = 1, std: float | None = None):
    filler = {"type": "gaussian", "std": std} if std else {"type": "msra"}
    return L.Convolution(bottom, name=name, kernel_size=k, num_output=n, stride=stride,
                         pad=k // 2, weight_filler=filler, bias_filler={"type": "constant"},
                         param=[{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0}])


def _fc(L, bottom, name: str, n: int, std: float | None = None):
    filler = {"type": "gaussian", "std": std} if std else {"type": "msra"}
    return L.InnerProduct(bottom, name=name, num_output=n, weight_filler=filler,
                          bias_filler={"type": "constant"},
                          param=[{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0}])


def small_faster_rcnn(num_classes: int, roi_type: str, roi_params: Mapping[str, Any],
                      train: bool, spec: Mapping[str, Any] = SMALL):
    """NetParameter of the small end-to-end Faster R-CNN (train or test net)."""
    from caffe import layers as L
    from caffe import net_spec
    from caffe import params as P

    n = net_spec.NetSpec()
    anchor = {"feat_stride": spec["feat_stride"], "scales": spec["anchor_scales"],
              "ratios": spec["anchor_ratios"]}
    num_anchors = len(spec["anchor_scales"]) * len(spec["anchor_ratios"])
    if train:
        n.data, n.im_info, n.gt_boxes = L.Python(
            name="input-data", ntop=3, python_param={
                "module": "roi_data_layer.layer", "layer": "RoIDataLayer",
                "param_str": _param_str({"num_classes": num_classes})})
    else:
        size = spec["image_size"]
        n.data = L.Input(shape={"dim": [1, 3, size, size]})
        n.im_info = L.Input(shape={"dim": [1, 3]})
    x = n.data
    for i, (k, c, s) in enumerate(spec["convs"]):
        conv = _conv(L, x, f"conv{i + 1}", k, c, s)
        setattr(n, f"conv{i + 1}", conv)
        x = L.ReLU(conv, in_place=True, name=f"relu{i + 1}")
        setattr(n, f"relu{i + 1}", x)
        if i in spec["pools_after"]:
            x = L.Pooling(x, name=f"pool{i + 1}", pool=P.Pooling.MAX, kernel_size=2, stride=2)
            setattr(n, f"pool{i + 1}", x)
    features = x
    n.rpn_conv = _conv(L, features, "rpn_conv", 3, spec["rpn_channels"], std=0.01)
    n.rpn_relu = L.ReLU(n.rpn_conv, in_place=True)
    n.rpn_cls_score = _conv(L, n.rpn_relu, "rpn_cls_score", 1, 2 * num_anchors, std=0.01)
    n.rpn_bbox_pred = _conv(L, n.rpn_relu, "rpn_bbox_pred", 1, 4 * num_anchors, std=0.001)
    n.rpn_cls_score_reshape = L.Reshape(n.rpn_cls_score, shape={"dim": [0, 2, -1, 0]})
    if train:
        (n.rpn_labels, n.rpn_bbox_targets, n.rpn_bbox_inside_weights,
         n.rpn_bbox_outside_weights) = L.Python(
            n.rpn_cls_score, n.gt_boxes, n.im_info, n.data, name="rpn-data", ntop=4,
            python_param={"module": "rpn.anchor_target_layer", "layer": "AnchorTargetLayer",
                          "param_str": _param_str(anchor)})
        n.rpn_loss_cls = L.SoftmaxWithLoss(n.rpn_cls_score_reshape, n.rpn_labels,
                                           propagate_down=[True, False], loss_weight=1,
                                           loss_param={"ignore_label": -1, "normalize": True})
        n.rpn_loss_bbox = L.SmoothL1Loss(n.rpn_bbox_pred, n.rpn_bbox_targets,
                                         n.rpn_bbox_inside_weights, n.rpn_bbox_outside_weights,
                                         loss_weight=1, smooth_l1_loss_param={"sigma": 3.0})
    n.rpn_cls_prob = L.Softmax(n.rpn_cls_score_reshape)
    n.rpn_cls_prob_reshape = L.Reshape(n.rpn_cls_prob,
                                       shape={"dim": [0, 2 * num_anchors, -1, 0]})
    proposal = {"module": "rpn.proposal_layer", "layer": "ProposalLayer",
                "param_str": _param_str(anchor)}
    if train:
        n.rpn_rois = L.Python(n.rpn_cls_prob_reshape, n.rpn_bbox_pred, n.im_info,
                              name="proposal", python_param=proposal)
        (n.rois, n.labels, n.bbox_targets, n.bbox_inside_weights,
         n.bbox_outside_weights) = L.Python(
            n.rpn_rois, n.gt_boxes, name="roi-data", ntop=5, python_param={
                "module": "rpn.proposal_target_layer", "layer": "ProposalTargetLayer",
                "param_str": _param_str({"num_classes": num_classes})})
    else:
        n.rois = L.Python(n.rpn_cls_prob_reshape, n.rpn_bbox_pred, n.im_info,
                          name="proposal", python_param=proposal)
    roi = {"pooled_h": spec["pooled"], "pooled_w": spec["pooled"],
           "spatial_scale": 1.0 / spec["feat_stride"], **roi_params}
    n.roi_pool = getattr(L, roi_type)(features, n.rois, name="roi_pool", roi_pooling_param=roi)
    n.fc6 = _fc(L, n.roi_pool, "fc6", spec["fc"])
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.fc7 = _fc(L, n.relu6, "fc7", spec["fc"])
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.cls_score = _fc(L, n.relu7, "cls_score", num_classes, std=0.01)
    n.bbox_pred = _fc(L, n.relu7, "bbox_pred", 4 * num_classes, std=0.001)
    if train:
        n.loss_cls = L.SoftmaxWithLoss(n.cls_score, n.labels, propagate_down=[True, False],
                                       loss_weight=1)
        n.loss_bbox = L.SmoothL1Loss(n.bbox_pred, n.bbox_targets, n.bbox_inside_weights,
                                     n.bbox_outside_weights, loss_weight=1)
    else:
        n.cls_prob = L.Softmax(n.cls_score)
    proto = n.to_proto()
    proto.name = f"small_faster_rcnn_{roi_type.lower()}"
    return proto


def write_small_models(out: str | Path, num_classes: int,
                       variants: Sequence[str] = tuple(VARIANTS)) -> dict[str, dict[str, Path]]:
    """models/<variant>/{train,test}.prototxt for each variant; returns their paths."""
    out = Path(out)
    paths: dict[str, dict[str, Path]] = {}
    for v in variants:
        roi_type, extra = VARIANTS[v]
        d = out / v
        d.mkdir(parents=True, exist_ok=True)
        paths[v] = {}
        for phase in ("train", "test"):
            p = d / f"{phase}.prototxt"
            text = str(small_faster_rcnn(num_classes, roi_type, extra, phase == "train"))
            if not p.is_file() or p.read_text() != text:
                p.write_text(text)
            paths[v][phase] = p
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="models/small")
    ap.add_argument("--num-classes", type=int, default=5, help="including background")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for v, p in write_small_models(args.out, args.num_classes).items():
        log.info("%s: %s, %s", v, p["train"], p["test"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
