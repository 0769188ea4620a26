"""A batch with zero RoIs through a whole detector head (issue 21, part 1).

The RoI layer gives a (0, C, ph, pw) top; every stock layer after it (InnerProduct, ReLU,
Dropout, the Split Caffe inserts where fc7 feeds two layers, Softmax, SoftmaxWithLoss, ...;
Convolution, Deconvolution, SigmoidCrossEntropyLoss in a mask head; BatchNorm, Scale, Eltwise,
Pooling, Reshape in a ResNet-style head) must give empty tops, losses of exactly 0 and zero
gradients (proto/0008-zero-row-blobs.patch). Without the patch these nets abort the process
(Split, SigmoidCrossEntropyLoss: `Check failed: n > 0`; Softmax, BatchNorm: SIGFPE).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rcnn.roi_harness.nets import load_net

ROOT = Path(__file__).resolve().parents[1]
ZF_ROIALIGN = ROOT / "models" / "pascal_voc" / "ZF" / "faster_rcnn_end2end_roialign"
ROI_TYPES = ("ROIPooling", "ROIAlign")
NUM_CLASSES = 21
# fc6 / fc7 have 4096 outputs in ZF; 256 keeps the test small (same layers otherwise).
FC_OUTPUTS = 256


def _parse(path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    text_format.Merge(path.read_text(), net)
    return net


def fast_rcnn_head(model_dir: Path) -> tuple[str, list[str]]:
    """The test net's head, from the RoI layer on, plus the train net's two losses: prototxt
    text (TRAIN, force_backward) with Inputs conv5 (1, 256, 14, 14), rois (0, 5), labels (0,)
    and the bbox targets and weights (0, 4 K); and the head's layer types in order."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    test, train = _parse(model_dir / "test.prototxt"), _parse(model_dir / "train.prototxt")
    start = next(i for i, layer in enumerate(test.layer) if layer.type in ROI_TYPES)
    head = list(test.layer[start:])
    losses = [layer for layer in train.layer if layer.name in ("loss_cls", "loss_bbox")]
    assert [layer.type for layer in losses] == ["SoftmaxWithLoss", "SmoothL1Loss"]
    net = caffe_pb2.NetParameter(name="zero_roi_head", force_backward=True)
    inputs = {"conv5": (1, 256, 14, 14), "rois": (0, 5), "labels": (0,),
              "bbox_targets": (0, 4 * NUM_CLASSES), "bbox_inside_weights": (0, 4 * NUM_CLASSES),
              "bbox_outside_weights": (0, 4 * NUM_CLASSES)}
    for name, shape in inputs.items():
        layer = net.layer.add(name=name, type="Input", top=[name])
        layer.input_param.shape.add(dim=shape)
    for layer in head + losses:
        new = net.layer.add()
        new.CopyFrom(layer)
        if new.name in ("fc6", "fc7"):
            new.inner_product_param.num_output = FC_OUTPUTS
    assert head[0].bottom[1] == "rois" and {"fc7", "cls_score", "bbox_pred"} <= {
        layer.name for layer in head}
    return text_format.MessageToString(net), [layer.type for layer in head + losses]


def mask_head(num_classes: int = 3) -> str:
    """A Mask R-CNN style mask head on zero RoIs: ROIAlign 14 x 14 -> Convolution 3 x 3 -> ReLU
    -> Deconvolution 2 x 2 stride 2 -> ReLU -> Convolution 1 x 1 -> SigmoidCrossEntropyLoss
    (ignore_label -1, VALID) against (0, K, 28, 28) mask targets."""
    filler = ("weight_filler { type: 'gaussian' std: 0.1 } "
              "bias_filler { type: 'constant' value: 0.1 }")
    return f"""name: "zero_roi_mask_head"
force_backward: true
layer {{ name: "feat" type: "Input" top: "feat"
  input_param {{ shape {{ dim: 1 dim: 32 dim: 20 dim: 20 }} }} }}
layer {{ name: "rois" type: "Input" top: "rois" input_param {{ shape {{ dim: 0 dim: 5 }} }} }}
layer {{ name: "mask_targets" type: "Input" top: "mask_targets"
  input_param {{ shape {{ dim: 0 dim: {num_classes} dim: 28 dim: 28 }} }} }}
layer {{ name: "roi_feat" type: "ROIAlign" bottom: "feat" bottom: "rois" top: "roi_feat"
  roi_pooling_param {{ pooled_h: 14 pooled_w: 14 spatial_scale: 0.0625 }} }}
layer {{ name: "mask_conv" type: "Convolution" bottom: "roi_feat" top: "mask_conv"
  convolution_param {{ num_output: 16 kernel_size: 3 pad: 1 {filler} }} }}
layer {{ name: "mask_relu" type: "ReLU" bottom: "mask_conv" top: "mask_conv" }}
layer {{ name: "mask_up" type: "Deconvolution" bottom: "mask_conv" top: "mask_up"
  convolution_param {{ num_output: 16 kernel_size: 2 stride: 2 {filler} }} }}
layer {{ name: "mask_up_relu" type: "ReLU" bottom: "mask_up" top: "mask_up" }}
layer {{ name: "mask_logits" type: "Convolution" bottom: "mask_up" top: "mask_logits"
  convolution_param {{ num_output: {num_classes} kernel_size: 1 {filler} }} }}
layer {{ name: "loss_mask" type: "SigmoidCrossEntropyLoss" bottom: "mask_logits"
  bottom: "mask_targets" top: "loss_mask" propagate_down: true propagate_down: false
  loss_param {{ ignore_label: -1 normalization: VALID }} }}
"""


def _run_zero_rois(net, feature: str, losses: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(0)
    for params in net.params.values():
        for p in params:
            p.data[...] = rng.standard_normal(p.data.shape)
            p.diff[...] = 0
    net.blobs[feature].data[...] = rng.standard_normal(net.blobs[feature].data.shape)
    net.blobs[feature].diff[...] = np.nan
    out = net.forward()
    net.backward()
    got = {name: float(out[name]) for name in losses}
    # Every blob after the RoI layer has zero rows; the loss tops are scalars.
    for name, blob in net.blobs.items():
        if name not in losses and name != feature:
            assert blob.data.shape[0] == 0, (name, blob.data.shape)
    # The feature map's gradient is exactly 0 (written, not left NaN), and no parameter got any.
    diff = net.blobs[feature].diff
    assert np.all(diff == 0), f"{feature} diff: {np.count_nonzero(diff)} non-zero / NaN"
    for layer_name, params in net.params.items():
        for i, p in enumerate(params):
            assert np.all(p.diff == 0), f"{layer_name} param {i} diff changed"
    return got


def _model_dirs() -> list:
    shared = ROOT.parent / "shared" / "fixtures" / "py-faster-rcnn" / "models"
    return [pytest.param(shared / "pascal_voc" / "ZF" / "faster_rcnn_end2end", id="zf-roipooling"),
            pytest.param(ZF_ROIALIGN, id="zf-roialign")]


@pytest.mark.parametrize("model_dir", _model_dirs())
def test_fast_rcnn_head_with_zero_rois(caffe, model_dir):
    if not (model_dir / "test.prototxt").is_file():
        pytest.skip(f"{model_dir} not present")
    text, types = fast_rcnn_head(model_dir)
    assert types[:2] in (["ROIPooling", "InnerProduct"], ["ROIAlign", "InnerProduct"])
    assert {"ReLU", "Dropout", "Softmax", "SoftmaxWithLoss", "SmoothL1Loss"} <= set(types)
    net = load_net(text, phase="TRAIN")
    # fc7 feeds cls_score and bbox_pred: Caffe inserts a Split, whose backward adds two diffs.
    assert "Split" in [layer.type for layer in net.layers]
    losses = _run_zero_rois(net, "conv5", ["cls_loss", "bbox_loss"])
    assert losses == {"cls_loss": 0.0, "bbox_loss": 0.0}
    assert net.blobs["cls_prob"].data.shape == (0, NUM_CLASSES)
    assert net.blobs["bbox_pred"].data.shape == (0, 4 * NUM_CLASSES)
    assert net.blobs["fc7"].data.shape == (0, FC_OUTPUTS)

    # The next batch has RoIs again, then none again: shapes and losses follow each batch.
    net.blobs["rois"].reshape(2, 5)
    net.blobs["rois"].data[...] = [[0, 8, 8, 120, 100], [0, 40, 30, 200, 180]]
    net.blobs["labels"].reshape(2)
    net.blobs["labels"].data[...] = [3, 0]
    for name in ("bbox_targets", "bbox_inside_weights", "bbox_outside_weights"):
        net.blobs[name].reshape(2, 4 * NUM_CLASSES)
        net.blobs[name].data[...] = 0.5
    out = net.forward()
    net.backward()
    assert net.blobs["cls_prob"].data.shape == (2, NUM_CLASSES)
    assert np.isfinite(out["cls_loss"]) and out["cls_loss"] > 0
    assert np.isfinite(out["bbox_loss"]) and out["bbox_loss"] > 0
    assert np.isfinite(net.blobs["conv5"].diff).all() and np.any(net.blobs["conv5"].diff != 0)
    for name in ("rois", "bbox_targets", "bbox_inside_weights", "bbox_outside_weights"):
        net.blobs[name].reshape(0, *net.blobs[name].data.shape[1:])
    net.blobs["labels"].reshape(0)
    losses = _run_zero_rois(net, "conv5", ["cls_loss", "bbox_loss"])
    assert losses == {"cls_loss": 0.0, "bbox_loss": 0.0}


def test_mask_head_with_zero_rois(caffe):
    net = load_net(mask_head(), phase="TRAIN")
    losses = _run_zero_rois(net, "feat", ["loss_mask"])
    assert losses == {"loss_mask": 0.0}
    assert net.blobs["mask_conv"].data.shape == (0, 16, 14, 14)
    assert net.blobs["mask_up"].data.shape == (0, 16, 28, 28)
    assert net.blobs["mask_logits"].data.shape == (0, 3, 28, 28)


def resnet_head(num_classes: int = 5) -> str:
    """A ResNet-style box head on zero RoIs (frozen BatchNorm, as detectors train it): ROIAlign
    7 x 7 -> Convolution -> BatchNorm -> Scale -> ReLU -> Eltwise SUM with the RoI features ->
    global AVE Pooling -> Reshape {0, -1} -> InnerProduct -> SoftmaxWithLoss. (Accuracy, which
    has no backward and so cannot be in a force_backward net, is in test_zero_rows.cpp.)"""
    filler = "weight_filler { type: 'gaussian' std: 0.1 }"
    return f"""name: "zero_roi_resnet_head"
force_backward: true
layer {{ name: "feat" type: "Input" top: "feat"
  input_param {{ shape {{ dim: 1 dim: 8 dim: 20 dim: 20 }} }} }}
layer {{ name: "rois" type: "Input" top: "rois" input_param {{ shape {{ dim: 0 dim: 5 }} }} }}
layer {{ name: "labels" type: "Input" top: "labels" input_param {{ shape {{ dim: 0 }} }} }}
layer {{ name: "roi_feat" type: "ROIAlign" bottom: "feat" bottom: "rois" top: "roi_feat"
  roi_pooling_param {{ pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 }} }}
layer {{ name: "res_conv" type: "Convolution" bottom: "roi_feat" top: "res_conv"
  convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 bias_term: false {filler} }} }}
layer {{ name: "res_bn" type: "BatchNorm" bottom: "res_conv" top: "res_conv"
  batch_norm_param {{ use_global_stats: true }} }}
layer {{ name: "res_scale" type: "Scale" bottom: "res_conv" top: "res_conv"
  scale_param {{ bias_term: true }} }}
layer {{ name: "res_relu" type: "ReLU" bottom: "res_conv" top: "res_conv" }}
layer {{ name: "res_sum" type: "Eltwise" bottom: "roi_feat" bottom: "res_conv" top: "res_sum" }}
layer {{ name: "pool" type: "Pooling" bottom: "res_sum" top: "pool"
  pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "flat" type: "Reshape" bottom: "pool" top: "flat"
  reshape_param {{ shape {{ dim: 0 dim: -1 }} }} }}
layer {{ name: "cls_score" type: "InnerProduct" bottom: "flat" top: "cls_score"
  inner_product_param {{ num_output: {num_classes} {filler} }} }}
layer {{ name: "loss_cls" type: "SoftmaxWithLoss" bottom: "cls_score" bottom: "labels"
  top: "cls_loss" propagate_down: true propagate_down: false
  loss_param {{ ignore_label: -1 normalize: true }} }}
"""


def test_resnet_style_head_with_zero_rois(caffe):
    net = load_net(resnet_head(), phase="TRAIN")
    losses = _run_zero_rois(net, "feat", ["cls_loss"])
    assert losses == {"cls_loss": 0.0}
    assert net.blobs["res_sum"].data.shape == (0, 8, 7, 7)
    assert net.blobs["flat"].data.shape == (0, 8)
    assert net.blobs["cls_score"].data.shape == (0, 5)
