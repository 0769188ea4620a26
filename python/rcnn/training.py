"""The training loop around a pycaffe solver: roidb feeding, loss log, progress, snapshots
(bbox_pred un-normalised), resume, and a clean stop on Ctrl-C or a non-finite loss."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from rcnn.config import AttrDict
from rcnn.progress import Progress

log = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """Training ended early; .exit_code and the message say why and what was saved."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def state_prefix(out: Path, prefix: str) -> Path:
    """Where the solver writes its .caffemodel / .solverstate pairs for --resume."""
    return (out / "state" / prefix).resolve()


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
    solver.snapshot_prefix = str(state_prefix(out, prefix))
    solver.snapshot = 0   # snapshots are taken by the Trainer
    solver.display = 0
    for k, v in (overrides or {}).items():
        setattr(solver, k, v)
    (out / "state").mkdir(parents=True, exist_ok=True)
    path = out / "solver.prototxt"
    path.write_text(text_format.MessageToString(solver))
    return path


def latest_state(out: Path, prefix: str) -> Path | None:
    """The newest <out>/state/<prefix>_iter_N.solverstate, or None."""
    states = sorted((out / "state").glob(f"{prefix}_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return states[-1] if states else None


class Trainer:
    """Owns a pycaffe solver over a train net whose RoIDataLayer reads `roidb`. `train` is the
    config's TRAIN section (for un-normalising bbox_pred in the saved weights)."""

    def __init__(self, solver_path: Path, roidb: list[dict[str, Any]], out: Path,
                 prefix: str, train: AttrDict, weights: str | Path | None = None,
                 resume: str | Path | None = None) -> None:
        import caffe

        self.out = out
        self.prefix = prefix
        self.train_cfg = train
        self.solver = caffe.get_solver(str(solver_path))
        self.net = self.solver.net
        if weights:
            log.info("initialising from %s", weights)
            self.net.copy_from(str(weights))
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
        if not state.is_file():
            raise FileNotFoundError(f"--resume {state}: no such solver state")
        self.solver.restore(str(state))
        data_state = state.with_suffix(".data.json")
        if data_state.is_file():
            self.data_layer.restore(json.loads(data_state.read_text()))
        log.info("resumed from %s at iteration %d", state, self.solver.iter)

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
        stats = self._bbox_stats()
        if stats is None:
            self.net.save(str(path))
            return path
        w, b = self.net.params["bbox_pred"][0].data, self.net.params["bbox_pred"][1].data
        orig_w, orig_b = w.copy(), b.copy()
        means, stds = stats
        w *= stds[:, None]
        b[...] = b * stds + means
        try:
            self.net.save(str(path))
        finally:
            w[...] = orig_w
            b[...] = orig_b
        return path

    def snapshot(self) -> Path:
        """Weights for users, plus the solver and data state for --resume."""
        it = self.solver.iter
        path = self.save_weights(it)
        self.solver.snapshot()
        state = Path(f"{self.solver_prefix()}_iter_{it}.solverstate")
        state.with_suffix(".data.json").write_text(json.dumps(self.data_layer.state()))
        log.info("snapshot: %s (resume with --resume %s)", path, state)
        return path

    def solver_prefix(self) -> str:
        return str(state_prefix(self.out, self.prefix))

    def _keep_good(self) -> None:
        self._good = (self.solver.iter, {k: [p.data.copy() for p in v]
                                         for k, v in self.net.params.items()})

    def _restore_good(self) -> int:
        it, params = self._good
        for k, arrays in params.items():
            for p, a in zip(self.net.params[k], arrays, strict=True):
                p.data[...] = a
        return it

    # ---- the loop -----------------------------------------------------------------------
    def train(self, max_iters: int, display: int = 20, snapshot_iters: int = 0) -> Path:
        start = self.solver.iter
        if start >= max_iters:
            log.info("already at iteration %d of %d", start, max_iters)
            return self.save_weights(start)
        progress = Progress(max_iters, start)
        self._keep_good()
        smoothed: dict[str, float] = {}
        with open(self.loss_log, "a") as flog:
            try:
                while self.solver.iter < max_iters:
                    self.solver.step(1)
                    it = self.solver.iter
                    losses = {k: float(self.net.blobs[k].data.ravel()[0])
                              for k in self.loss_names}
                    bad = [k for k, v in losses.items() if not math.isfinite(v)]
                    if bad:
                        self._stop_on_bad_loss(it, bad, losses)
                    flog.write(json.dumps({"iter": it, **losses}) + "\n")
                    for k, v in losses.items():
                        smoothed[k] = v if k not in smoothed else 0.9 * smoothed[k] + 0.1 * v
                    if it % display == 0 or it == max_iters:
                        flog.flush()
                        self._keep_good()
                        parts = " + ".join(f"{k.replace('_loss', '').replace('loss_', '')} {v:.3f}"
                                           for k, v in smoothed.items())
                        log.info("iter %s | loss %.3f = %s", progress.line(it),
                                 sum(smoothed.values()), parts)
                    if snapshot_iters and it % snapshot_iters == 0 and it < max_iters:
                        self.snapshot()
            except KeyboardInterrupt:
                path = self.snapshot()
                raise TrainingStopped(
                    f"interrupted at iteration {self.solver.iter}: saved {path}; continue with "
                    f"--resume {self.solver_prefix()}_iter_{self.solver.iter}.solverstate",
                    130) from None
        return self.snapshot()

    def _stop_on_bad_loss(self, it: int, bad: list[str], losses: dict[str, float]) -> None:
        good_it = self._restore_good()
        path = self.save_weights(good_it)
        raise TrainingStopped(
            f"non-finite loss at iteration {it} ({', '.join(f'{k}={losses[k]}' for k in bad)});"
            f" saved the last good weights (iteration {good_it}) to {path}. Lower the learning "
            "rate or check the data.", 3)
