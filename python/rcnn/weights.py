"""What a weights or solver-state file is, and whether it fits a net, checked before Caffe
reads it: Caffe aborts the process (a glog fatal error and a stack trace, exit 134) on a
.caffemodel given where a .solverstate belongs, on a solver state whose weights file is gone,
and on weights whose shapes do not fit the net. Here each is a WeightsError, a ValueError
whose message is one line naming the file, what it is and what was expected (the tools print
it and exit 2).

Files are told apart by content, not by name (as Caffe itself does):
- a .caffemodel is a binary NetParameter with layers (`layer`, or V1's `layers`);
- a .solverstate is a binary SolverState with history blobs;
- a prototxt is text that parses as a NetParameter with layers (a net) or as a
  SolverParameter (a solver);
- an HDF5 file (Caffe's other snapshot format) is taken by its name: `*.solverstate.h5` is a
  solver state, any other a net's weights; its shapes are not checked here.

The checks:
- check_weights_file / check_solverstate_file: the kind of file (before anything is built);
- check_weights_fit(path, net): every layer of the file whose name is a layer of the pycaffe
  net has that layer's number of parameter blobs, each of the net's shape (Caffe's rule:
  legacy 4-D num / channels / height / width blobs compare with the net's shape padded to 4
  axes); a layer that does not fit is named with both shapes, and the message says to rename
  it in the prototxt so that it is initialised afresh (Caffe copies by layer name);
- copy_plan(file, net) / log_copy_plan: what Caffe's copy by layer name (Net::CopyTrained
  LayersFrom, pycaffe's copy_from) does with a fitting file, for fine-tuning from another
  net's weights (e.g. an ImageNet classifier): which of the net's layers with parameters
  get the file's weights, which keep their fillers' initialisation, which of the file's
  layers are not used;
- solverstate_weights: a solver state's weights file (its learned_net, or else the
  .caffemodel beside it, as when a run's folder was moved);
- check_history_fits: the state's history blobs against the net's learnable parameters (as
  many per parameter as the solver type keeps: 2 for Adam and AdaDelta, else 1).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# kind -> what a message calls it
KINDS = {
    "caffemodel": "a .caffemodel (a net's weights)",
    "solverstate": "a .solverstate (a training run's solver state)",
    "net_prototxt": "a net prototxt",
    "solver_prototxt": "a solver prototxt",
    "hdf5_weights": "an HDF5 weights file",
    "hdf5_solverstate": "an HDF5 solver state",
    "empty": "an empty file",
    "text": "a text file that is neither a net nor a solver prototxt",
    "unknown": "not a Caffe file (neither weights, a solver state nor a prototxt)",
    "folder": "a folder",
    "missing": "no such file",
}
WEIGHTS_KINDS = ("caffemodel", "hdf5_weights")
STATE_KINDS = ("solverstate", "hdf5_solverstate")


class WeightsError(ValueError):
    """A weights, solver-state or net file of the wrong kind, or one that does not fit the
    net: the message is one line naming the file."""


@dataclass
class CaffeFile:
    """A file and what it holds: kind (a key of KINDS) and, for the protobuf kinds, the parsed
    message (NetParameter, SolverState or SolverParameter)."""

    path: Path
    kind: str
    message: Any = None

    def describe(self) -> str:
        return KINDS[self.kind]


def _looks_like_text(data: bytes) -> bool:
    if b"\x00" in data[:65536]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _layers(net) -> list:
    return list(net.layer) + list(net.layers)


def _read_text(path: Path, text: str) -> CaffeFile:
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    if not text.strip():
        return CaffeFile(path, "empty")
    for kind, message in (("net_prototxt", caffe_pb2.NetParameter()),
                          ("solver_prototxt", caffe_pb2.SolverParameter())):
        try:
            text_format.Merge(text, message)
        except text_format.ParseError:
            continue
        if _layers(message) if kind == "net_prototxt" else message.ListFields():
            return CaffeFile(path, kind, message)
    return CaffeFile(path, "text")


def _read_binary(path: Path, data: bytes) -> CaffeFile:
    from caffe.proto import caffe_pb2
    from google.protobuf import message as pb_message

    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(data)
        # A caffemodel parsed as a SolverState has no history (its field 3 is a net's
        # optional `input` names, which do not parse as blobs).
        if len(state.history) and all(len(h.shape.dim) or h.HasField("num") or len(h.data)
                                      or len(h.double_data) for h in state.history):
            return CaffeFile(path, "solverstate", state)
    except pb_message.DecodeError:
        pass
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
        if any(_layer_name(la) for la in _layers(net)):
            return CaffeFile(path, "caffemodel", net)
    except pb_message.DecodeError:
        pass
    return CaffeFile(path, "unknown")


def read_caffe_file(path: str | Path) -> CaffeFile:
    """What the file at path is (by its content), with its parsed message."""
    path = Path(path)
    if not path.exists():
        return CaffeFile(path, "missing")
    if path.is_dir():
        return CaffeFile(path, "folder")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e.strerror}") from None
    if not data:
        return CaffeFile(path, "empty")
    if data.startswith(HDF5_SIGNATURE):
        kind = "hdf5_solverstate" if ".solverstate" in path.name else "hdf5_weights"
        return CaffeFile(path, kind)
    if _looks_like_text(data):
        return _read_text(path, data.decode("utf-8"))
    return _read_binary(path, data)


def wrong_kind(f: CaffeFile, what: str, expected: str, hint: str = "") -> WeightsError:
    """The one-line error for a file that is not what `what` (an option) takes."""
    return WeightsError(f"{f.path} ({what}): {f.describe()}, expected {expected}"
                        + (f"; {hint}" if hint else ""))


def check_weights_file(path: str | Path, what: str = "--weights",
                       resume_option: bool = True) -> CaffeFile:
    """A net's weights (a .caffemodel, or HDF5), else WeightsError saying what the file is
    (for a solver state: where its weights are, and, with resume_option, that --resume
    continues its run)."""
    f = read_caffe_file(path)
    if f.kind in WEIGHTS_KINDS:
        return f
    hint = ""
    if f.kind == "solverstate":
        weights = f.message.learned_net
        hint = f"its weights are {weights}" if weights else ""
        if resume_option:
            hint = (f"to continue that run use --resume {f.path}"
                    + (f", to start from its weights --weights {weights}" if weights else ""))
    raise wrong_kind(f, what, "a .caffemodel (a net's weights)", hint)


def check_solverstate_file(path: str | Path, what: str = "--resume") -> CaffeFile:
    """A solver state (binary or HDF5), else WeightsError saying what the file is."""
    f = read_caffe_file(path)
    if f.kind in STATE_KINDS:
        return f
    hint = (f"to start from these weights use --weights {f.path}"
            if f.kind in WEIGHTS_KINDS else "")
    raise wrong_kind(f, what, "a .solverstate (written to <out>/state/ by train_net)", hint)


def solverstate_weights(state: CaffeFile, what: str = "--resume") -> Path:
    """The weights file a (binary) solver state restores: its learned_net if that exists,
    else the .caffemodel beside the state with the same name (a moved run folder); else
    WeightsError naming both."""
    learned = Path(state.message.learned_net) if state.message.learned_net else None
    beside = state.path.with_name(state.path.name.removesuffix(".solverstate") + ".caffemodel")
    for candidate in (learned, beside):
        if candidate is not None and candidate.is_file():
            return candidate
    named = f"its weights file {learned} is missing, nor is there {beside}" if learned else (
        f"it names no weights file, and there is no {beside}")
    raise WeightsError(f"{state.path} ({what}): a .solverstate, but {named}")


# --- shapes ----------------------------------------------------------------------------------

def _layer_name(layer) -> str:
    """A stored layer's name (V0 layers, inside V1's `layer` field, included)."""
    if layer.name:
        return layer.name
    inner = getattr(layer, "layer", None)
    return inner.name if inner is not None else ""


def _layer_blobs(layer) -> list:
    if len(layer.blobs):
        return list(layer.blobs)
    inner = getattr(layer, "layer", None)
    return list(inner.blobs) if inner is not None else []


def proto_shape(blob) -> tuple[int, ...]:
    """A BlobProto's shape: its legacy 4-D (num, channels, height, width) when any of them is
    set, its `shape` otherwise."""
    if any(blob.HasField(k) for k in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def shape_fits(blob, shape: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals: a legacy blob against the shape padded with leading 1s to 4
    axes, any other blob exactly."""
    stored = proto_shape(blob)
    if any(blob.HasField(k) for k in ("num", "channels", "height", "width")):
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == stored
    return stored == tuple(shape)


def net_param_shapes(net) -> dict[str, list[tuple[int, ...]]]:
    """Every layer of a pycaffe net (those without parameters too) -> its blobs' shapes."""
    return {name: [tuple(b.data.shape) for b in layer.blobs]
            for name, layer in zip(net._layer_names, net.layers, strict=True)}


def _shape(s: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, s)) + ")"


def weight_mismatches(stored, shapes: dict[str, list[tuple[int, ...]]]) -> list[str]:
    """What of a NetParameter's stored layers does not fit the net's shapes, one phrase per
    layer (empty if all fit). Layers absent from the net are ignored, as Caffe ignores them."""
    problems = []
    for layer in _layers(stored):
        name = _layer_name(layer)
        if name not in shapes:
            continue
        blobs, target = _layer_blobs(layer), shapes[name]
        if len(blobs) != len(target):
            problems.append(f"layer '{name}' has {len(blobs)} parameter blobs in the file, "
                            f"{len(target)} in the net")
            continue
        if not all(shape_fits(b, s) for b, s in zip(blobs, target, strict=True)):
            problems.append(f"layer '{name}': {', '.join(_shape(proto_shape(b)) for b in blobs)}"
                            f" in the file, {', '.join(_shape(s) for s in target)} in the net")
    return problems


def check_weights_fit(path: str | Path, net, what: str = "--weights",
                      resume_option: bool = True) -> CaffeFile:
    """The weights file at path, after checking that it is one (check_weights_file) and that
    its layers fit the pycaffe net's; WeightsError naming every layer that does not, with
    both shapes. HDF5 weights are not compared."""
    f = check_weights_file(path, what, resume_option)
    if f.kind != "caffemodel":
        return f
    shapes = net_param_shapes(net)
    problems = weight_mismatches(f.message, shapes)
    renamed = sorted({p.split("'")[1] for p in problems})
    if problems:
        raise WeightsError(
            f"{f.path} ({what}) does not fit the net: {'; '.join(problems)}. Caffe copies "
            "weights by layer name: to initialise a layer afresh instead (e.g. a new class "
            "count), rename it in the prototxt (e.g. "
            f"{', '.join(repr(n + '_new') for n in renamed)})")
    names = {_layer_name(la) for la in _layers(f.message)}
    if not any(n in names for n, s in shapes.items() if s):
        log.warning("%s: no layer with parameters has the name of a layer of the net; no "
                    "weights are copied", f.path)
    return f


@dataclass
class CopyPlan:
    """What copying a .caffemodel into a net by layer name does (Caffe's
    Net::CopyTrainedLayersFrom: a net layer takes the blobs of the file's layer of the same
    name; the file's other layers are skipped). Names only of layers with parameter blobs:
    copied, the net's layers that the file initialises (net order); initialised, the net's
    layers that the file lacks, which keep their fillers' values (net order); unused, the
    file's layers that the net lacks (file order)."""

    copied: list[str]
    initialised: list[str]
    unused: list[str]

    def line(self, path: str | Path, limit: int = 30) -> str:
        """One log line: the counts and the names (at most `limit` of each list)."""
        total = len(self.copied) + len(self.initialised)
        return (f"{path}: copied by name {len(self.copied)} of the net's {total} layers with "
                f"parameters ({_names(self.copied, limit)}); initialised by their fillers "
                f"instead, not in the file: {len(self.initialised)} "
                f"({_names(self.initialised, limit)}); the file's layers not in the net, "
                f"not used: {len(self.unused)} ({_names(self.unused, limit)})")


def _names(names: list[str], limit: int) -> str:
    if not names:
        return "none"
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def copy_plan(stored, net) -> CopyPlan:
    """The CopyPlan of a NetParameter (a parsed .caffemodel: CaffeFile.message) copied into a
    pycaffe net. Layers with parameters only, on either side; whether the shapes fit is
    check_weights_fit's business (a layer counted as copied here that does not fit makes
    Caffe abort)."""
    shapes = net_param_shapes(net)
    in_file = [_layer_name(la) for la in _layers(stored) if _layer_blobs(la)]
    file_names = set(in_file)
    with_params = [name for name, s in shapes.items() if s]
    return CopyPlan(copied=[n for n in with_params if n in file_names],
                    initialised=[n for n in with_params if n not in file_names],
                    unused=[n for n in in_file if n not in shapes])


def log_copy_plan(f: CaffeFile, net) -> CopyPlan | None:
    """Logs (INFO) the CopyPlan of a checked weights file (check_weights_fit's return) into
    the net, and returns it; None, with no log line, for HDF5 weights (not parsed here)."""
    if f.kind != "caffemodel":
        return None
    plan = copy_plan(f.message, net)
    log.info("%s", plan.line(f.path))
    return plan


def check_weights_fit_prototxt(path: str | Path, prototxt: str | Path, config,
                               what: str = "--weights") -> CaffeFile:
    """check_weights_fit against the TEST net of a prototxt, built (with config active, for
    its Python layers) without weights and dropped."""
    import caffe

    from rcnn.config import activate

    f = check_weights_file(path, what, resume_option=False)
    if f.kind != "caffemodel":
        return f
    activate(config)
    net = caffe.Net(str(prototxt), caffe.TEST)
    try:
        return check_weights_fit(path, net, what, resume_option=False)
    finally:
        del net


# --- solver states ---------------------------------------------------------------------------

# history blobs per learnable parameter, by solver type (Caffe's *Solver::*PreSolve)
HISTORY_PER_PARAM = {"SGD": 1, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2,
                     "Adam": 2}


LEGACY_SOLVER_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                       "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}


def solver_type(solver) -> str:
    """A SolverParameter's type, from `type` or the deprecated `solver_type` enum."""
    if solver.HasField("type") or not solver.HasField("solver_type"):
        return solver.type
    return LEGACY_SOLVER_TYPES[type(solver).SolverType.Name(solver.solver_type)]


def learnable_shapes(net) -> list[tuple[str, int, tuple[int, ...]]]:
    """The net's learnable parameters in Caffe's order (each shared blob once, where it first
    appears): (layer, blob index, shape)."""
    seen, out = set(), []
    for name, layer in zip(net._layer_names, net.layers, strict=True):
        for j, b in enumerate(layer.blobs):
            address = b.data.__array_interface__["data"][0]
            if address not in seen:
                seen.add(address)
                out.append((name, j, tuple(b.data.shape)))
    return out


def check_history_fits(state: CaffeFile, net, kind: str, what: str = "--resume") -> None:
    """WeightsError if a binary solver state's history does not belong to this net trained
    with this solver type (Caffe aborts on a count that differs, and silently reshapes a
    blob whose shape does)."""
    params = learnable_shapes(net)
    per = HISTORY_PER_PARAM.get(kind)
    history = state.message.history
    if per is None or not params:
        return
    if len(history) != per * len(params):
        raise WeightsError(
            f"{state.path} ({what}): a .solverstate with {len(history)} history blobs, but "
            f"this net trained with {kind} keeps {per * len(params)} ({per} for each of its "
            f"{len(params)} learnable parameters): it was written for another net or solver")
    for i, blob in enumerate(history):
        name, j, shape = params[i % len(params)]
        if not shape_fits(blob, shape):
            raise WeightsError(
                f"{state.path} ({what}): history blob {i} has shape "
                f"{_shape(proto_shape(blob))}, the net's layer '{name}' blob {j} "
                f"{_shape(shape)}: it was written for another net")
