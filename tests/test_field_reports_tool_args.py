"""Field report 5: a tool argument of the wrong kind. Every path argument of the tools is
checked for what it must be before Caffe sees it, by content: a wrong one is one line naming
the file, what it is and what was expected, and exit status 2. Before, Caffe aborted the
process (a glog fatal error, a stack trace, exit 134): `--resume x.caffemodel` with
`state.history_size() == history_.size() (0 vs. 44)`, weights of another class count with
"Cannot copy param 0 weights from layer 'cls_score'; shape mismatch"."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rcnn.config import activate, load

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "models" / "small"
TRAIN = str(SMALL / "roialign" / "train.prototxt")
TEST = str(SMALL / "roialign" / "test.prototxt")
CFG = str(SMALL / "config.yml")


def tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLOG_minloglevel="2", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", f"rcnn.tools.{name}", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def one_line_error(r: subprocess.CompletedProcess, prefix: str = "[rcnn] ") -> str:
    """The error line of a tool that exited 2 without a traceback or a Caffe abort."""
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "Check failed" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(prefix), r.stderr[-3000:]
    return last


@pytest.fixture(scope="module")
def run(tmp_path_factory, caffe):
    """A dataset, a 2-iteration run of the small model (weights, solver state) and the
    weights of the same model with 3 classes instead of 5."""
    from rcnn.datasets.synthetic import generate
    from rcnn.models import write_small_models

    root = tmp_path_factory.mktemp("run")
    data = generate(root / "data", 4, 4)
    r = tool("train_net", "--net", TRAIN, "--data", data, "--cfg", CFG, "--iters", "2",
             "--out", root / "out")
    assert r.returncode == 0, r.stderr
    three = write_small_models(root / "models3", 3, ["roialign"])["roialign"]
    activate(load(CFG))
    net = caffe.Net(str(three["test"]), caffe.TEST)
    net.save(str(root / "three_classes.caffemodel"))
    return {"root": root, "data": data, "weights": root / "out" / "model_iter_2.caffemodel",
            "state": root / "out" / "state" / "model_iter_2.solverstate",
            "three": root / "three_classes.caffemodel", "three_test": three["test"]}


def train(run, out, *args):
    return tool("train_net", "--net", TRAIN, "--data", run["data"], "--cfg", CFG, "--iters",
                "3", "--out", out, *args)


# --- train_net --------------------------------------------------------------------------

def test_caffemodel_as_resume(run, tmp_path):
    """The issue's input (was: glog fatal 'history_size() == history_.size() (0 vs. 44)',
    exit 134)."""
    line = one_line_error(train(run, tmp_path / "o", "--resume", run["weights"]))
    assert line == (f"[rcnn] {run['weights']} (--resume): a .caffemodel (a net's weights), "
                    "expected a .solverstate (written to <out>/state/ by train_net); to start "
                    f"from these weights use --weights {run['weights']}")


def test_prototxt_as_resume(run, tmp_path):
    line = one_line_error(train(run, tmp_path / "o", "--resume", TRAIN))
    assert f"{TRAIN} (--resume): a net prototxt, expected a .solverstate" in line


def test_solverstate_as_weights(run, tmp_path):
    """Was: glog fatal 'Failed to parse NetParameter file', exit 134."""
    line = one_line_error(train(run, tmp_path / "o", "--weights", run["state"]))
    assert line.startswith(f"[rcnn] {run['state']} (--weights): a .solverstate (a training "
                           "run's solver state), expected a .caffemodel (a net's weights); to "
                           f"continue that run use --resume {run['state']}, to start from its "
                           "weights --weights ")
    assert line.endswith("model_iter_2.caffemodel")


def test_solverstate_whose_weights_are_missing(run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(run["state"].parent, moved)
    (moved / "model_iter_2.caffemodel").unlink()
    saved = tmp_path / "saved.caffemodel"
    original = run["state"].with_suffix(".caffemodel")
    original.rename(saved)
    try:
        line = one_line_error(train(run, tmp_path / "o", "--resume",
                                    moved / "model_iter_2.solverstate"))
    finally:
        saved.rename(original)
    assert line == (f"[rcnn] {moved / 'model_iter_2.solverstate'} (--resume): a .solverstate, "
                    f"but its weights file {original.resolve()} is missing, nor is there "
                    f"{moved / 'model_iter_2.caffemodel'}")


def test_solverstate_of_a_moved_run_folder_resumes_from_the_weights_beside_it(run, tmp_path):
    """Its learned_net names the old place; the .caffemodel beside it is used (was: glog
    fatal, exit 134)."""
    moved = tmp_path / "moved"
    shutil.copytree(run["state"].parent, moved)
    saved = tmp_path / "saved.caffemodel"
    original = run["state"].with_suffix(".caffemodel")
    original.rename(saved)
    try:
        r = train(run, tmp_path / "o", "--resume", moved / "model_iter_2.solverstate")
    finally:
        saved.rename(original)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"its weights {original.resolve()} are not there; restoring " in r.stderr
    assert "resumed from" in r.stderr and "at iteration 2" in r.stderr
    assert (tmp_path / "o" / "model_iter_3.caffemodel").is_file()
    assert not list((tmp_path / "o" / "state" / ".partial").glob(".resume*"))


def test_weights_of_another_class_count(run, tmp_path):
    """The classic fine-tuning mistake (was: glog fatal 'Cannot copy param 0 weights from
    layer 'cls_score'; shape mismatch', exit 134)."""
    line = one_line_error(train(run, tmp_path / "o", "--weights", run["three"]))
    assert line == (
        f"[rcnn] {run['three']} (--weights) does not fit the net: layer 'cls_score': (3, 256),"
        " (3) in the file, (5, 256), (5) in the net; layer 'bbox_pred': (12, 256), (12) in the "
        "file, (20, 256), (20) in the net. Caffe copies weights by layer name: to initialise a "
        "layer afresh instead (e.g. a new class count), rename it in the prototxt (e.g. "
        "'bbox_pred_new', 'cls_score_new')")


def test_solverstate_of_another_net(run, tmp_path, caffe):
    """A solver state whose weights belong to a 3-class net: its weights are checked against
    the net before Caffe restores them."""
    from caffe.proto import caffe_pb2

    state = caffe_pb2.SolverState()
    state.ParseFromString(run["state"].read_bytes())
    state.learned_net = str(run["three"])
    other = tmp_path / "other.solverstate"
    other.write_bytes(state.SerializeToString())
    line = one_line_error(train(run, tmp_path / "o", "--resume", other))
    assert line.startswith(f"[rcnn] {run['three']} (the weights of --resume {other}) does not "
                           "fit the net: layer 'cls_score': (3, 256), (3) in the file")


def test_solverstate_of_another_solver_type(run, tmp_path):
    """An Adam state (2 history blobs per parameter) resumed with an SGD solver (was: glog
    fatal 'history_size() == history_.size() (44 vs. 22)')."""
    solver = tmp_path / "sgd.prototxt"
    solver.write_text('type: "SGD"\nbase_lr: 0.001\nlr_policy: "fixed"\n')
    line = one_line_error(train(run, tmp_path / "o", "--solver", solver, "--resume",
                                run["state"]))
    assert line == (f"[rcnn] {run['state']} (--resume): a .solverstate with 44 history blobs, "
                    "but this net trained with SGD keeps 22 (1 for each of its 22 learnable "
                    "parameters): it was written for another net or solver")


@pytest.mark.parametrize("option,given,message", [
    ("--net", "weights", "(--net): a .caffemodel (a net's weights), expected a net prototxt"),
    ("--net", "solver", "(--net): a solver prototxt, expected a net prototxt"),
    ("--solver", "net", "(--solver): a net prototxt, expected a solver prototxt"),
    ("--cfg", "net", "(--cfg): a net prototxt, expected a YAML config file"),
    ("--cfg", "weights", "(--cfg): a .caffemodel (a net's weights), expected a YAML config"),
    ("--out", "weights", "(--out): a file, expected a folder (or a new path)"),
])
def test_train_net_paths_of_the_wrong_kind(run, tmp_path, option, given, message):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('type: "Adam"\nbase_lr: 0.001\n')
    path = {"weights": run["weights"], "solver": solver, "net": TRAIN}[given]
    args = ["--net", TRAIN, "--data", run["data"], "--cfg", CFG, "--iters", "3", "--out",
            tmp_path / "o"]
    if option in ("--net", "--out"):
        args[args.index(option) + 1] = path
    else:
        args += [option, path]
    line = one_line_error(tool("train_net", *args))
    assert line == f"[rcnn] {path} {message}" or line.startswith(f"[rcnn] {path} {message}")


# --- test_net and demo -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["test_net", "demo"])
def test_test_tools_weights_of_the_wrong_kind_or_shape(run, tmp_path, name):
    common = ["--net", TEST, "--data", run["data"], "--cfg", CFG, "--out",
              tmp_path / ("r.json" if name == "test_net" else "d.png")]
    line = one_line_error(tool(name, *common, "--weights", run["state"]))
    assert line.startswith(f"[rcnn] {run['state']} (--weights): a .solverstate (a training "
                           "run's solver state), expected a .caffemodel (a net's weights); its "
                           "weights are ")
    line = one_line_error(tool(name, *common, "--weights", run["three"]))
    assert line.startswith(f"[rcnn] {run['three']} (--weights) does not fit the net: layer "
                           "'cls_score': (3, 256), (3) in the file, (5, 256), (5) in the net")
    line = one_line_error(tool(name, *common, "--weights", TEST))
    assert line.startswith(f"[rcnn] {TEST} (--weights): a net prototxt, expected a .caffemodel")


@pytest.mark.parametrize("name", ["test_net", "demo"])
def test_test_tools_out_is_a_folder(run, tmp_path, name):
    """Refused before the detections are computed (was: an error after all of them)."""
    line = one_line_error(tool(name, "--net", TEST, "--weights", run["weights"], "--data",
                               run["data"], "--cfg", CFG, "--out", tmp_path))
    assert line == (f"[rcnn] {tmp_path} (--out): a folder, expected the path of a file to "
                    "write")


def test_test_net_right_weights_still_work(run, tmp_path):
    r = tool("test_net", "--net", TEST, "--weights", run["weights"], "--data", run["data"],
             "--cfg", CFG, "--out", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr[-3000:]


# --- swap_roi and run_demo --------------------------------------------------------------

def test_swap_roi_inputs_of_the_wrong_kind(run, tmp_path):
    line = one_line_error(tool("swap_roi", run["state"], tmp_path / "o.prototxt"),
                          "swap_roi: error: ")
    assert line == (f"swap_roi: error: {run['state']}: a .solverstate (a training run's solver "
                    "state), expected a net prototxt or a .caffemodel")
    line = one_line_error(tool("swap_roi", TEST, tmp_path), "swap_roi: error: ")
    assert line == f"swap_roi: error: {tmp_path}: a folder, expected the path of the file to write"
    # the kind of a net file is its content, not its name
    disguised = tmp_path / "weights.prototxt"
    shutil.copy(run["weights"], disguised)
    r = tool("swap_roi", disguised, tmp_path / "o.caffemodel", "--to", "ROIPooling")
    assert r.returncode == 0, r.stderr
    assert "layer 'roi_pool': ROIAlign -> ROIPooling" in r.stdout


def test_run_demo_out_and_data_must_be_folders(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for option in ("--out", "--data"):
        other = "--data" if option == "--out" else "--out"
        line = one_line_error(tool("run_demo", option, a_file, other, tmp_path / "x",
                                   "--iters", "1"))
        assert line == f"[rcnn] {a_file} ({option}): a file, expected a folder (or a new path)"


# --- rcnn.weights by itself ---------------------------------------------------------------

def test_kinds_by_content(run, tmp_path, caffe):
    from rcnn.weights import read_caffe_file

    files = {"empty": b"", "hdf5_weights": b"\x89HDF\r\n\x1a\n rest",
             "text": b"a: [1, 2]\n", "unknown": b"\xff\xfe\x00\x01 binary"}
    for kind, data in files.items():
        (tmp_path / kind).write_bytes(data)
        assert read_caffe_file(tmp_path / kind).kind == kind
    (tmp_path / "s.solverstate.h5").write_bytes(files["hdf5_weights"])
    assert read_caffe_file(tmp_path / "s.solverstate.h5").kind == "hdf5_solverstate"
    # names do not matter
    for path, kind in ((run["weights"], "caffemodel"), (run["state"], "solverstate"),
                       (TRAIN, "net_prototxt"), (run["root"] / "out" / "solver.prototxt",
                                                 "solver_prototxt")):
        disguised = tmp_path / "x.bin"
        shutil.copy(path, disguised)
        assert read_caffe_file(disguised).kind == kind, path
    assert read_caffe_file(tmp_path).kind == "folder"
    assert read_caffe_file(tmp_path / "nothing").kind == "missing"


def test_v1_layers_and_legacy_blob_dims_follow_caffe(caffe, tmp_path):
    """A V1 caffemodel (`layers`, 4-D num / channels / height / width blobs) fits as Caffe's
    Blob::ShapeEquals decides: the net's shape padded with leading 1s."""
    from caffe.proto import caffe_pb2
    from rcnn.weights import WeightsError, check_weights_fit, read_caffe_file

    activate(load(CFG))
    net = caffe.Net(TEST, caffe.TEST)
    old = caffe_pb2.NetParameter()
    for name in ("fc7", "cls_score"):
        layer = old.layers.add()
        layer.name = name
        layer.type = caffe_pb2.V1LayerParameter.INNER_PRODUCT
        for shape in (p.data.shape for p in net.params[name]):
            blob = layer.blobs.add()
            blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - len(shape)) + shape
            blob.data.extend(np.zeros(int(np.prod(shape)), np.float32))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(old.SerializeToString())
    assert read_caffe_file(path).kind == "caffemodel"
    check_weights_fit(path, net)
    net.copy_from(str(path))          # and Caffe agrees
    old.layers[1].blobs[0].height = 3
    path.write_bytes(old.SerializeToString())
    with pytest.raises(WeightsError, match=r"layer 'cls_score': \(1, 1, 3, 256\), \(1, 1, 1, 5\)"
                                           r" in the file, \(5, 256\), \(5\) in the net"):
        check_weights_fit(path, net)
    old.layers[1].blobs.pop()
    path.write_bytes(old.SerializeToString())
    with pytest.raises(WeightsError, match="layer 'cls_score' has 1 parameter blobs in the file, "
                                           "2 in the net"):
        check_weights_fit(path, net)


def test_learnable_parameters_count_shared_blobs_once(caffe):
    """The FPN's RPN head shares its weights across levels by param name: Caffe keeps one
    history blob set for them."""
    from rcnn.weights import learnable_shapes

    activate(load(str(SMALL / "multiscale.yml")))
    net = caffe.Net(str(SMALL / "fpn_roialign" / "test.prototxt"), caffe.TEST)
    blobs = sum(len(v) for v in net.params.values())
    learnable = learnable_shapes(net)
    assert len(learnable) < blobs
    assert len({(name, j) for name, j, _ in learnable}) == len(learnable)
