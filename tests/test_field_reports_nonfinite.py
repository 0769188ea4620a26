"""Field report 2: non-finite numbers inside the Python layers. Every Python layer (both
proposal layers, both anchor-target layers, the proposal-target layer) meets NaN or inf in an
input with rcnn.layers.finite.NonFiniteInput naming the layer and the input; in training it
takes the non-finite-loss stop (last good weights saved, exit 3), at test time one line and
exit 3. Before, all-NaN deltas gave "attempt to get argmax of an empty sequence" (and exit 2
from train_net, with nothing saved) and NaN scores went through to the scores top."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load
from rcnn.layers.finite import NonFiniteInput, check_finite

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "models" / "small"
CFG = str(SMALL / "config.yml")
BAD = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def test_check_finite_passes_finite_arrays_and_counts_the_rest():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert check_finite("L", "x", a) is a
    ints = np.arange(3)
    assert check_finite("L", "x", ints) is ints
    a[0, 0], a[1, 2], a[1, 1] = np.nan, np.inf, -np.inf
    with pytest.raises(NonFiniteInput) as e:
        check_finite("ProposalLayer", "rpn_bbox_pred", a)
    err = e.value
    assert (err.layer, err.blob, err.nan, err.inf, err.total) == (
        "ProposalLayer", "rpn_bbox_pred", 1, 2, 6)
    assert str(err) == ("ProposalLayer: input rpn_bbox_pred has 3 non-finite values (1 NaN, "
                        "2 inf) of 6")
    # an ArithmeticError, never taken for a malformed input file (ValueError: exit 2)
    assert isinstance(err, FloatingPointError) and not isinstance(err, ValueError)


# --- one Python layer in a net of Input blobs ---------------------------------------------

def layer_net(caffe, tmp_path, module, layer, param_str, bottoms, tops, phase):
    """A net whose Input layer gives `bottoms` (name -> shape) to one Python layer."""
    inputs = "".join(f"  top: '{n}'\n" for n in bottoms)
    shapes = "".join(f"    shape {{ {' '.join(f'dim: {d}' for d in s)} }}\n"
                     for s in bottoms.values())
    text = (f"layer {{\n  name: 'in'\n  type: 'Input'\n{inputs}  input_param {{\n{shapes}  }}\n}}\n"
            f"layer {{\n  name: 'under_test'\n  type: 'Python'\n"
            + "".join(f"  bottom: '{n}'\n" for n in bottoms)
            + "".join(f"  top: '{t}'\n" for t in tops)
            + f"  python_param {{ module: '{module}' layer: '{layer}' "
              f"param_str: \"{param_str}\" }}\n}}\n")
    path = tmp_path / f"{layer}.prototxt"
    path.write_text(text)
    activate(load(CFG))
    return caffe.Net(str(path), phase)


def fill(net, values):
    for name, v in values.items():
        net.blobs[name].data[...] = v


def proposal_inputs(rng, h=4, w=5, a=9):
    scores = rng.uniform(0, 1, (1, 2 * a, h, w)).astype(np.float32)
    deltas = rng.normal(0, 0.1, (1, 4 * a, h, w)).astype(np.float32)
    return {"rpn_cls_prob_reshape": scores, "rpn_bbox_pred": deltas,
            "im_info": np.array([[64, 80, 1]], np.float32)}


@pytest.fixture
def proposal_net(caffe, tmp_path):
    shapes = {k: v.shape for k, v in proposal_inputs(np.random.default_rng(0)).items()}
    return layer_net(caffe, tmp_path, "rpn.proposal_layer", "ProposalLayer",
                     "{'feat_stride': 16}", shapes, ["rois", "scores"], caffe.TEST)


def test_proposal_layer_finite_inputs_still_work(proposal_net):
    fill(proposal_net, proposal_inputs(np.random.default_rng(0)))
    proposal_net.forward()
    assert proposal_net.blobs["rois"].data.shape[0] > 0
    assert np.isfinite(proposal_net.blobs["scores"].data).all()


def test_proposal_layer_all_nan_deltas_is_the_issues_input(proposal_net):
    """Was: ValueError 'attempt to get argmax of an empty sequence'."""
    inputs = proposal_inputs(np.random.default_rng(0))
    inputs["rpn_bbox_pred"][...] = np.nan
    fill(proposal_net, inputs)
    with pytest.raises(NonFiniteInput, match=r"^ProposalLayer: input rpn_bbox_pred has 720 "
                                             r"non-finite values \(720 NaN, 0 inf\) of 720$"):
        proposal_net.forward()


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("blob", ["rpn_cls_prob_reshape", "rpn_bbox_pred", "im_info"])
def test_proposal_layer_one_bad_value_in_any_input(proposal_net, blob, bad):
    """One NaN or inf in any input, scores included (NaN scores used to reach the scores
    top)."""
    inputs = proposal_inputs(np.random.default_rng(1))
    inputs[blob].flat[-1] = BAD[bad]
    fill(proposal_net, inputs)
    with pytest.raises(NonFiniteInput) as e:
        proposal_net.forward()
    assert (e.value.layer, e.value.blob) == ("ProposalLayer", blob)
    assert e.value.nan + e.value.inf == 1


FPN_PARAM = "{'feat_strides': [8, 16], 'anchor_sizes': [16, 32], 'ratios': [0.5, 1, 2]}"


def fpn_proposal_inputs(rng):
    deltas = [rng.normal(0, 0.1, (1, 12, 8, 8)), rng.normal(0, 0.1, (1, 12, 4, 4))]
    n = 3 * (64 + 16)
    prob = rng.uniform(0, 1, (1, 2, n))
    return {"rpn_cls_prob": prob, "d0": deltas[0], "d1": deltas[1],
            "im_info": np.array([[64, 64, 1]], float)}


@pytest.mark.parametrize("blob,name", [("rpn_cls_prob", "rpn_cls_prob"),
                                       ("d0", "rpn_bbox_pred of level 0"),
                                       ("d1", "rpn_bbox_pred of level 1"),
                                       ("im_info", "im_info")])
def test_fpn_proposal_layer(caffe, tmp_path, blob, name):
    inputs = fpn_proposal_inputs(np.random.default_rng(2))
    net = layer_net(caffe, tmp_path, "rcnn.layers.fpn_proposal", "FPNProposalLayer", FPN_PARAM,
                    {k: v.shape for k, v in inputs.items()}, ["rois", "scores"], caffe.TEST)
    fill(net, inputs)
    net.forward()
    assert np.isfinite(net.blobs["scores"].data).all()
    inputs[blob][...] = np.nan
    fill(net, inputs)
    with pytest.raises(NonFiniteInput) as e:
        net.forward()
    assert (e.value.layer, e.value.blob) == ("FPNProposalLayer", name)
    assert e.value.nan == inputs[blob].size


GT = np.array([[4, 4, 30, 30, 1], [20, 10, 60, 50, 2]], np.float32)
TARGET_TOPS = ["labels", "targets", "inside", "outside"]


@pytest.mark.parametrize("blob", ["gt_boxes", "im_info"])
@pytest.mark.parametrize("bad", list(BAD))
def test_anchor_target_layer(caffe, tmp_path, blob, bad):
    inputs = {"rpn_cls_score": np.zeros((1, 18, 4, 4)), "gt_boxes": GT.copy(),
              "im_info": np.array([[64, 64, 1]], float), "data": np.zeros((1, 3, 64, 64))}
    net = layer_net(caffe, tmp_path, "rpn.anchor_target_layer", "AnchorTargetLayer",
                    "{'feat_stride': 16}", {k: v.shape for k, v in inputs.items()},
                    TARGET_TOPS, caffe.TRAIN)
    fill(net, inputs)
    net.forward()
    inputs[blob][0, 1] = BAD[bad]
    fill(net, inputs)
    with pytest.raises(NonFiniteInput) as e:
        net.forward()
    assert (e.value.layer, e.value.blob) == ("AnchorTargetLayer", blob)


@pytest.mark.parametrize("blob", ["gt_boxes", "im_info"])
def test_fpn_anchor_target_layer(caffe, tmp_path, blob):
    inputs = {"p0": np.zeros((1, 3, 8, 8)), "p1": np.zeros((1, 3, 4, 4)),
              "gt_boxes": GT.copy(), "im_info": np.array([[64, 64, 1]], float)}
    net = layer_net(caffe, tmp_path, "rcnn.layers.fpn_anchor_target", "FPNAnchorTargetLayer",
                    FPN_PARAM, {k: v.shape for k, v in inputs.items()}, TARGET_TOPS,
                    caffe.TRAIN)
    fill(net, inputs)
    net.forward()
    inputs[blob][0, 2] = np.inf
    fill(net, inputs)
    with pytest.raises(NonFiniteInput) as e:
        net.forward()
    assert (e.value.layer, e.value.blob, e.value.inf) == ("FPNAnchorTargetLayer", blob, 1)


@pytest.mark.parametrize("blob", ["rpn_rois", "gt_boxes"])
@pytest.mark.parametrize("bad", list(BAD))
def test_proposal_target_layer(caffe, tmp_path, blob, bad):
    rois = np.hstack([np.zeros((3, 1)), GT[[0, 1, 1], :4] + 1]).astype(np.float32)
    inputs = {"rpn_rois": rois, "gt_boxes": GT.copy()}
    net = layer_net(caffe, tmp_path, "rpn.proposal_target_layer", "ProposalTargetLayer",
                    "{'num_classes': 3}", {k: v.shape for k, v in inputs.items()},
                    ["rois", "labels", "bbox_targets", "inside", "outside"], caffe.TRAIN)
    fill(net, inputs)
    net.forward()
    inputs[blob][1, 2] = BAD[bad]
    fill(net, inputs)
    with pytest.raises(NonFiniteInput) as e:
        net.forward()
    assert (e.value.layer, e.value.blob) == ("ProposalTargetLayer", blob)


# --- the tools ------------------------------------------------------------------------------

def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLOG_minloglevel="2", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", f"rcnn.tools.{name}", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def four_images(tmp_path_factory):
    from rcnn.datasets.synthetic import generate

    return generate(tmp_path_factory.mktemp("data"), 4, 4)


def test_diverging_training_stops_with_exit_3_and_finite_weights(caffe, four_images, tmp_path):
    """The issue's run: --lr 1e6 on the small model. Was exit 2, 'attempt to get argmax of an
    empty sequence', no weights saved."""
    out = tmp_path / "out"
    r = tool("train_net", "--net", str(SMALL / "roialign" / "train.prototxt"), "--data",
             str(four_images), "--cfg", CFG, "--lr", "1e6", "--iters", "20", "--out", str(out))
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "non-finite input at iteration 2 in layer 'proposal' (ProposalLayer: input " in last
    assert "saved the last good weights (iteration 0)" in last
    assert "Traceback" not in r.stderr and "argmax" not in r.stderr
    saved = sorted(out.glob("*.caffemodel"))
    assert [p.name for p in saved] == ["model_iter_0.caffemodel"]
    net = caffe.Net(str(SMALL / "roialign" / "test.prototxt"), caffe.TEST,
                    weights=str(saved[0]))
    assert all(np.isfinite(p.data).all() for ps in net.params.values() for p in ps)


def test_test_net_with_weights_that_give_nan_is_one_line_exit_3(caffe, four_images, tmp_path):
    net = caffe.Net(str(SMALL / "roialign" / "test.prototxt"), caffe.TEST)
    net.params["rpn_bbox_pred"][1].data[...] = np.nan
    weights = tmp_path / "nan.caffemodel"
    net.save(str(weights))
    r = tool("test_net", "--net", str(SMALL / "roialign" / "test.prototxt"), "--weights",
             str(weights), "--data", str(four_images), "--cfg", CFG, "--out",
             str(tmp_path / "r.json"))
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("[rcnn] non-finite numbers in the net")
    assert "ProposalLayer: input rpn_bbox_pred has" in last
    assert "Traceback" not in r.stderr


def test_non_finite_weights_at_a_checkpoint_stop_training(caffe, four_images, tmp_path):
    """Weights that turn non-finite in the update of a checkpoint iteration (the loss of that
    iteration still finite) are not kept as the last good ones: the stop saves the ones
    before."""
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.training import Trainer, TrainingStopped, write_solver

    config = load(CFG)
    solver = write_solver(None, SMALL / "roialign" / "train.prototxt", tmp_path, "m")
    activate(config)
    trainer = Trainer(solver, train_roidb(open_dataset(four_images, "train"), True), tmp_path,
                      "m", config.TRAIN, seed=config.RNG_SEED)
    real = trainer.solver

    class Poisoned:
        def step(self, n):
            real.step(n)
            if real.iter == 2:
                real.net.params["fc6"][0].data[0, 0] = np.inf

        def __getattr__(self, name):
            return getattr(real, name)

    trainer.solver = Poisoned()
    with pytest.raises(TrainingStopped) as e:
        trainer.train(5, display=1)
    assert e.value.exit_code == 3
    assert "non-finite weights after iteration 2 (layers fc6)" in str(e.value)
    assert "last good weights (iteration 1)" in str(e.value)
    assert (tmp_path / "m_iter_1.caffemodel").is_file()
