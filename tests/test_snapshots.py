"""Snapshots are atomic: a process killed while it writes a snapshot (by the file-size limit in
the middle of a write, or by SIGKILL between the renames) leaves every published file
complete, and --resume continues from the newest one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")

# Trains 2 iterations and snapshots, then sets up its own death in the snapshot at iteration 3:
# 'fsize N' limits files to N bytes (SIGXFSZ kills it in the middle of the write that crosses
# the limit), 'replace N' sends itself SIGKILL before the N-th rename.
CHILD = """
import os, resource, signal, sys
from pathlib import Path
from rcnn.config import activate, load
from rcnn.datasets import open_dataset
from rcnn.datasets.imdb import train_roidb
from rcnn.training import Trainer, write_solver

net, data, out, cfg, how, n = sys.argv[1:7]
out, n = Path(out), int(n)
config = load(cfg, overrides=["TRAIN.SCALES", "(160,)"])
solver = write_solver(None, net, out, "m")
activate(config)
trainer = Trainer(solver, train_roidb(open_dataset(data, "train"), False), out, "m",
                  config.TRAIN, seed=config.RNG_SEED)
trainer.train(2, display=1)
if how == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
else:
    replace, calls = os.replace, []
    def dying_replace(a, b):
        calls.append(b)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(a, b)
    os.replace = dying_replace
trainer.train(3, display=1)
print("survived")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("snap")
    data = generate(root / "data", 4, 1, SyntheticSpec(seed=4))
    nets = write_small_models(root / "models", 5, variants=["roialign"])["roialign"]
    return data, nets["train"]


def blob_sizes(path: Path, kind: str) -> list[tuple[str, int]]:
    """Each blob's name and element count; raises if the file does not parse or a blob holds
    fewer values than its shape."""
    from caffe.proto import caffe_pb2

    msg = caffe_pb2.NetParameter() if kind == "net" else caffe_pb2.SolverState()
    msg.ParseFromString(path.read_bytes())
    if kind == "net":
        blobs = [(f"{la.name}/{i}", b) for la in msg.layer for i, b in enumerate(la.blobs)]
    else:
        blobs = [(f"history/{i}", b) for i, b in enumerate(msg.history)]
        assert msg.iter > 0 and Path(msg.learned_net).is_file(), path
    sizes = []
    for name, b in blobs:
        count = 1
        for d in b.shape.dim:
            count *= d
        assert len(b.data) == count, f"{path}: {name} has {len(b.data)} of {count} values"
        sizes.append((name, count))
    assert sizes, f"{path}: no blobs"
    return sizes


def published(out: Path) -> list[Path]:
    return [p for d in (out, out / "state") for p in sorted(d.iterdir())
            if p.is_file() and not p.name.startswith(".")
            and p.suffix in (".caffemodel", ".solverstate", ".json")]


def check_complete(out: Path, reference: dict[str, list]) -> None:
    for p in published(out):
        if p.suffix == ".json":
            import json

            json.loads(p.read_text())
            continue
        kind = "net" if p.suffix == ".caffemodel" else "state"
        assert blob_sizes(p, kind) == reference[kind], p


def run_child(setup, out: Path, how: str, n: int) -> subprocess.CompletedProcess:
    data, net = setup
    env = dict(os.environ, GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", CHILD, str(net), str(data), str(out), CFG,
                           how, str(n)], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    """A run that is not killed: the complete files' blob sizes."""
    out = tmp_path_factory.mktemp("ref")
    r = run_child(setup, out, "replace", 0)
    assert r.returncode == 0 and "survived" in r.stdout, r.stderr
    sizes = {"net": blob_sizes(out / "m_iter_3.caffemodel", "net"),
             "state": blob_sizes(out / "state" / "m_iter_3.solverstate", "state")}
    files = {p.name: p.stat().st_size for p in published(out)}
    return sizes, files


@pytest.mark.parametrize("how", ["fsize weights", "fsize solverstate", "replace 2",
                                 "replace 4"])
def test_killed_during_a_snapshot_leaves_complete_files(caffe, setup, reference, tmp_path,
                                                        how):
    from rcnn.training import Trainer, latest_state

    sizes, files = reference
    kind, point = how.split()
    if kind == "fsize":
        # half way through the first file of that kind the snapshot writes
        n = files["m_iter_3.caffemodel"] // 2 if point == "weights" else (
            files["m_iter_3.caffemodel"] + files["m_iter_3.solverstate"]) // 2
    else:
        n = int(point)
    r = run_child(setup, tmp_path, kind, n)
    assert r.returncode == -(signal.SIGXFSZ if kind == "fsize" else signal.SIGKILL), r.stderr
    check_complete(tmp_path, sizes)
    newest = latest_state(tmp_path, "m")
    assert newest is not None and newest.name in ("m_iter_2.solverstate", "m_iter_3.solverstate")
    if kind == "fsize":   # killed in a write: the iteration-3 state is not published
        assert newest.name == "m_iter_2.solverstate"
    if how == "fsize weights":
        assert not (tmp_path / "m_iter_3.caffemodel").exists()
    # and training resumes from it
    from rcnn.config import activate, load
    from rcnn.datasets import open_dataset
    from rcnn.datasets.imdb import train_roidb
    from rcnn.training import write_solver

    data, net = setup
    config = load(CFG, overrides=["TRAIN.SCALES", "(160,)"])
    solver = write_solver(None, net, tmp_path, "m")
    activate(config)
    trainer = Trainer(solver, train_roidb(open_dataset(data, "train"), False), tmp_path, "m",
                      config.TRAIN, resume=newest, seed=config.RNG_SEED)
    assert trainer.solver.iter == int(newest.stem.rsplit("_", 1)[1])
