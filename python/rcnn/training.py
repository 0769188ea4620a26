"""The training loop around a pycaffe solver: roidb feeding, loss log, progress, snapshots
(bbox_pred un-normalised), exact resume, and a clean stop on Ctrl-C or on non-finite
numbers: a NaN or infinite loss, NaN or inf reaching a Python layer (rcnn.layers.finite's
NonFiniteInput, raised inside solver.step) or non-finite weights at a checkpoint all save the
last good weights and stop with exit status 3.

Snapshots are atomic: every file is written under a temporary name (Caffe's own solver files
in <out>/state/.partial/) and renamed into place, the .solverstate last, so a crash or
`kill -9` at any moment leaves the newest published snapshot complete. A resumed run repeats
the uninterrupted one bit for bit (on one thread): the snapshot holds the data layer's epoch
order, every numpy Generator of the net's Python layers and numpy's global random state, and
Caffe's random generator (which pycaffe cannot read) is reseeded from (seed, iteration) before
every iteration."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from rcnn.config import AttrDict
from rcnn.layers.finite import NonFiniteInput
from rcnn.progress import Progress
from rcnn.weights import (
    check_history_fits,
    check_solverstate_file,
    check_weights_fit,
    log_copy_plan,
    solver_type,
    solverstate_weights,
)

log = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """Training ended early; .exit_code and the message say why and what was saved."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def state_prefix(out: Path, prefix: str) -> Path:
    """Where the published .caffemodel / .solverstate pairs for --resume are."""
    return (out / "state" / prefix).resolve()


def staging_prefix(out: Path, prefix: str) -> Path:
    """Where Caffe's solver writes a snapshot before it is renamed to state_prefix."""
    return (out / "state" / ".partial" / prefix).resolve()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, path: Path) -> Path:
    """Flushes tmp to disk and renames it to path (atomic on one file system)."""
    _fsync(tmp)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        _fsync(path.parent)
    return path


def write_atomic(path: Path, data: bytes) -> Path:
    """path holds either its old content or all of data, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    return publish(tmp, path)


def numpy_global_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_numpy_global_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def layer_generators(net) -> dict[str, np.random.Generator]:
    """Every numpy Generator held by the net's Python layers, as '<layer>.<attribute>'."""
    found = {}
    for name, layer in zip(net._layer_names, net.layers, strict=True):
        for attr, value in getattr(layer, "__dict__", {}).items():
            if isinstance(value, np.random.Generator):
                found[f"{name}.{attr}"] = value
    return found


def caffe_step_seed(seed: int, iteration: int) -> int:
    """The seed of Caffe's generator for the step that starts at `iteration`."""
    return (seed * 1_000_003 + iteration) % (2 ** 31)


def write_solver(template: str | Path | None, train_net: str | Path, out: Path,
                 prefix: str, overrides: dict[str, Any] | None = None) -> Path:
    """A solver prototxt in `out` with train_net and snapshot_prefix set (absolute paths)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    solver = caffe_pb2.SolverParameter()
    if template:
        text_format.Merge(Path(template).read_text(), solver)
    else:
        solver.base_lr, solver.lr_policy, solver.momentum = 0.001, "fixed", 0.9
        solver.type = "Adam"
        solver.momentum2 = 0.999
        solver.weight_decay = 0.0005
    solver.ClearField("net")
    solver.train_net = str(Path(train_net).resolve())
    solver.snapshot_prefix = str(staging_prefix(out, prefix))
    solver.snapshot_format = caffe_pb2.SolverParameter.BINARYPROTO
    solver.snapshot = 0   # snapshots are taken (and published) by the Trainer
    solver.display = 0
    for k, v in (overrides or {}).items():
        setattr(solver, k, v)
    staging_prefix(out, prefix).parent.mkdir(parents=True, exist_ok=True)
    path = out / "solver.prototxt"
    path.write_text(text_format.MessageToString(solver))
    return path


def latest_state(out: Path, prefix: str) -> Path | None:
    """The newest <out>/state/<prefix>_iter_N.solverstate, or None."""
    states = sorted((out / "state").glob(f"{prefix}_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return states[-1] if states else None


def _solver_param(solver_path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    return text_format.Merge(Path(solver_path).read_text(), caffe_pb2.SolverParameter())


@contextlib.contextmanager
def _ctrl_c_after_step() -> Iterator[list[bool]]:
    """While active, a first Ctrl-C sets the yielded flag (the loop stops after the current
    iteration, so that the snapshot is at an iteration boundary); a second one interrupts."""
    flag = [False]

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True
        log.warning("Ctrl-C: stopping after this iteration (again to stop now)")

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, handler)
        installed = True
    except ValueError:   # not the main thread: leave SIGINT alone
        installed = False
    try:
        yield flag
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


class Trainer:
    """Owns a pycaffe solver over a train net whose RoIDataLayer reads `roidb`. `train` is the
    config's TRAIN section (for un-normalising bbox_pred in the saved weights); `seed` seeds
    Caffe's generator before each iteration (with the iteration)."""

    def __init__(self, solver_path: Path, roidb: list[dict[str, Any]], out: Path,
                 prefix: str, train: AttrDict, weights: str | Path | None = None,
                 resume: str | Path | None = None, seed: int = 0) -> None:
        import caffe

        self.out = out
        self.prefix = prefix
        self.train_cfg = train
        self.seed = seed
        param = _solver_param(solver_path)
        self.staging = Path(param.snapshot_prefix)
        self.solver_type = solver_type(param)
        self.solver = caffe.get_solver(str(solver_path))
        self.net = self.solver.net
        if weights:
            # what Caffe would abort on: not weights, or weights that do not fit the net
            found = check_weights_fit(weights, self.net, "--weights")
            log.info("initialising from %s", weights)
            self.net.copy_from(str(weights))
            log_copy_plan(found, self.net)   # which layers were copied, which initialised
        self.data_layer = next((la for la in self.net.layers if hasattr(la, "set_roidb")), None)
        if self.data_layer is None:
            raise ValueError(f"{solver_path}: the train net has no RoIDataLayer")
        self.data_layer.set_roidb(roidb)
        if resume:
            self._resume(Path(resume))
        self.loss_names = [b for b in self.net.outputs if "loss" in b]
        self.loss_log = out / "loss_log.jsonl"
        self._good: tuple[int, dict[str, list[np.ndarray]]] | None = None

    def _resume(self, state: Path) -> None:
        """Restores the solver from a .solverstate after checking what Caffe would abort on:
        not a solver state, its weights file missing or not fitting the net, its history
        not the net's. A state whose learned_net is gone but whose .caffemodel is beside it
        (a moved run folder) is restored from a copy that names that one."""
        found = check_solverstate_file(state, "--resume")
        if found.kind == "solverstate":
            weights = solverstate_weights(found, "--resume")
            check_weights_fit(weights, self.net, f"the weights of --resume {state}",
                              resume_option=False)
            check_history_fits(found, self.net, self.solver_type, "--resume")
            if str(weights) != found.message.learned_net:
                log.warning("%s: its weights %s are not there; restoring %s", state,
                            found.message.learned_net, weights)
                found.message.learned_net = str(weights.resolve())
                moved = self.staging.parent / ".resume.solverstate"
                write_atomic(moved, found.message.SerializeToString())
                try:
                    self.solver.restore(str(moved))
                finally:
                    moved.unlink()
            else:
                self.solver.restore(str(state))
        else:
            self.solver.restore(str(state))
        data_state = state.with_name(state.name.removesuffix(".solverstate") + ".data.json")
        if data_state.is_file():
            self.restore_random_state(json.loads(data_state.read_text()))
        else:
            log.warning("%s: missing; the data order and random state start afresh",
                        data_state)
        log.info("resumed from %s at iteration %d", state, self.solver.iter)

    def random_state(self) -> dict[str, Any]:
        """What, besides the solver state, decides the iterations to come."""
        return {"data": self.data_layer.state(), "seed": self.seed,
                "numpy": numpy_global_state(),
                "generators": {k: g.bit_generator.state
                               for k, g in layer_generators(self.net).items()}}

    def restore_random_state(self, state: dict[str, Any]) -> None:
        if "perm" in state:   # written before the random states were saved
            self.data_layer.restore(state)
            return
        self.data_layer.restore(state["data"])
        set_numpy_global_state(state["numpy"])
        generators = layer_generators(self.net)
        for key, value in state["generators"].items():
            if key in generators:
                generators[key].bit_generator.state = value
            else:
                log.warning("snapshot has the random state of %s, which this net lacks", key)
        if state.get("seed", self.seed) != self.seed:
            log.warning("snapshot was trained with RNG_SEED %s, resuming with %s",
                        state["seed"], self.seed)

    # ---- snapshots ----------------------------------------------------------------------
    def _bbox_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        t = self.train_cfg
        if not (t.BBOX_REG and t.BBOX_NORMALIZE_TARGETS_PRECOMPUTED
                and "bbox_pred" in self.net.params):
            return None
        reps = self.net.params["bbox_pred"][0].data.shape[0] // 4
        return (np.tile(t.BBOX_NORMALIZE_MEANS, reps), np.tile(t.BBOX_NORMALIZE_STDS, reps))

    def save_weights(self, iteration: int) -> Path:
        """<out>/<prefix>_iter_N.caffemodel with bbox_pred un-normalised, so that test time
        needs no normalisation constants."""
        path = self.out / f"{self.prefix}_iter_{iteration}.caffemodel"
        tmp = path.with_name(f".{path.name}.tmp")
        stats = self._bbox_stats()
        if stats is None:
            self.net.save(str(tmp))
            return publish(tmp, path)
        w, b = self.net.params["bbox_pred"][0].data, self.net.params["bbox_pred"][1].data
        orig_w, orig_b = w.copy(), b.copy()
        means, stds = stats
        w *= stds[:, None]
        b[...] = b * stds + means
        try:
            self.net.save(str(tmp))
        finally:
            w[...] = orig_w
            b[...] = orig_b
        return publish(tmp, path)

    def snapshot(self) -> Path:
        """Weights for users, plus the solver and random state for --resume; each file
        published whole (the .solverstate, which --resume and latest_state look for, last)."""
        from caffe.proto import caffe_pb2

        it = self.solver.iter
        path = self.save_weights(it)
        staged = f"{self.staging}_iter_{it}"
        final = f"{self.solver_prefix()}_iter_{it}"
        for old in self.staging.parent.glob(f"{self.staging.name}_iter_*"):
            old.unlink()   # left by a run that crashed while snapshotting
        self.solver.snapshot()
        write_atomic(Path(f"{final}.data.json"), json.dumps(self.random_state()).encode())
        publish(Path(f"{staged}.caffemodel"), Path(f"{final}.caffemodel"))
        state = caffe_pb2.SolverState()
        state.ParseFromString(Path(f"{staged}.solverstate").read_bytes())
        state.learned_net = f"{final}.caffemodel"
        write_atomic(Path(f"{final}.solverstate"), state.SerializeToString())
        Path(f"{staged}.solverstate").unlink()
        log.info("snapshot: %s (resume with --resume %s.solverstate)", path, final)
        return path

    def solver_prefix(self) -> str:
        return str(state_prefix(self.out, self.prefix))

    def non_finite_params(self) -> list[str]:
        """Names of the layers whose weights hold NaN or inf."""
        return [k for k, v in self.net.params.items()
                if not all(np.isfinite(p.data).all() for p in v)]

    def _keep_good(self) -> bool:
        """Copies the weights as the last good ones, if they are all finite; False (the
        previous copy kept) otherwise."""
        if self.non_finite_params():
            return False
        self._good = (self.solver.iter, {k: [p.data.copy() for p in v]
                                         for k, v in self.net.params.items()})
        return True

    def _restore_good(self) -> int:
        it, params = self._good
        for k, arrays in params.items():
            for p, a in zip(self.net.params[k], arrays, strict=True):
                p.data[...] = a
        return it

    # ---- the loop -----------------------------------------------------------------------
    def train(self, max_iters: int, display: int = 20, snapshot_iters: int = 0) -> Path:
        import caffe

        start = self.solver.iter
        if start >= max_iters:
            log.info("already at iteration %d of %d", start, max_iters)
            return self.save_weights(start)
        progress = Progress(max_iters, start)
        if not self._keep_good():
            raise ValueError(f"the weights at iteration {start} (from --weights or --resume) "
                             "hold NaN or inf, in layers "
                             f"{', '.join(self.non_finite_params())}")
        smoothed: dict[str, float] = {}
        with open(self.loss_log, "a") as flog, _ctrl_c_after_step() as stop:
            try:
                while self.solver.iter < max_iters:
                    if stop[0]:
                        raise KeyboardInterrupt
                    caffe.set_random_seed(caffe_step_seed(self.seed, self.solver.iter))
                    try:
                        self.solver.step(1)
                    except NonFiniteInput as e:
                        self._stop_on_non_finite_input(self.solver.iter + 1, e)
                    it = self.solver.iter
                    losses = {k: float(self.net.blobs[k].data.ravel()[0])
                              for k in self.loss_names}
                    bad = [k for k, v in losses.items() if not math.isfinite(v)]
                    if bad:
                        self._stop_on_bad_loss(it, bad, losses)
                    flog.write(json.dumps({"iter": it, **losses}) + "\n")
                    for k, v in losses.items():
                        smoothed[k] = v if k not in smoothed else 0.9 * smoothed[k] + 0.1 * v
                    snapshot_now = bool(snapshot_iters) and it % snapshot_iters == 0
                    if snapshot_now or it % display == 0 or it == max_iters:
                        flog.flush()
                        if not self._keep_good():
                            self._stop_non_finite(f"non-finite weights after iteration {it} "
                                                  f"(layers {', '.join(self.non_finite_params())})")
                    if it % display == 0 or it == max_iters:
                        parts = " + ".join(f"{k.replace('_loss', '').replace('loss_', '')} {v:.3f}"
                                           for k, v in smoothed.items())
                        log.info("iter %s | loss %.3f = %s", progress.line(it),
                                 sum(smoothed.values()), parts)
                    if snapshot_now and it < max_iters:
                        self.snapshot()
            except KeyboardInterrupt:
                path = self.snapshot()
                raise TrainingStopped(
                    f"interrupted at iteration {self.solver.iter}: saved {path}; continue with "
                    f"--resume {self.solver_prefix()}_iter_{self.solver.iter}.solverstate",
                    130) from None
        return self.snapshot()

    def _stop_non_finite(self, what: str) -> NoReturn:
        """The stop on non-finite numbers: the last good weights restored and saved,
        TrainingStopped with exit status 3."""
        good_it = self._restore_good()
        path = self.save_weights(good_it)
        raise TrainingStopped(
            f"{what}; saved the last good weights (iteration {good_it}) to {path}. Lower the "
            "learning rate or check the data.", 3)

    def _stop_on_bad_loss(self, it: int, bad: list[str], losses: dict[str, float]) -> NoReturn:
        self._stop_non_finite(f"non-finite loss at iteration {it} "
                              f"({', '.join(f'{k}={losses[k]}' for k in bad)})")

    def _stop_on_non_finite_input(self, it: int, error: NonFiniteInput) -> NoReturn:
        names = [n for n, layer in zip(self.net._layer_names, self.net.layers, strict=True)
                 if type(layer).__name__ == error.layer]
        where = f"layer {', '.join(repr(n) for n in names)} " if names else ""
        self._stop_non_finite(f"non-finite input at iteration {it} in {where}({error})")
