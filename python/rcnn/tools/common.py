"""Command-line pieces shared by the tools."""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path

from rcnn.config import AttrDict, load
from rcnn.datasets.errors import DatasetError
from rcnn.layers.finite import NonFiniteInput

log = logging.getLogger("rcnn")

# Errors that are the input's fault: one line, exit status 2 (--debug: the traceback).
USER_ERRORS = (DatasetError, OSError, ValueError)
# NaN or inf met by a Python layer of the net (rcnn.layers.finite): one line, exit status 3,
# the status of training's stop on a non-finite loss. The files were well-formed; the numbers
# the net computed from them were not (typically weights from a run that diverged).
NON_FINITE_EXIT = 3


def add_config_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--cfg", action="append", default=[], metavar="YAML",
                    help="config file merged over the defaults (repeatable)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY VALUE", dest="set_cfgs",
                    help="config overrides, e.g. --set TRAIN.SCALES '(256,)' RNG_SEED 7")
    ap.add_argument("--gpu", type=int, default=None,
                    help="GPU id (CUDA builds); CPU when not given")
    ap.add_argument("--debug", action="store_true",
                    help="on an error, show the traceback instead of one line")


def add_data_args(ap: argparse.ArgumentParser, imageset: str) -> None:
    ap.add_argument("--data", required=True,
                    help="a VOC-format folder or a COCO-format JSON file")
    ap.add_argument("--imageset", default=imageset,
                    help="VOC: a list in ImageSets/Main/ or the path of a list file (without "
                         f"ImageSets/Main/, every annotation is used); default {imageset}")
    ap.add_argument("--image-root", type=Path, default=None,
                    help="COCO: the folder the JSON's file_names are relative to (default: "
                         "the JSON's folder)")


def load_config(args: argparse.Namespace) -> AttrDict:
    """The config of a tool's run: the defaults, its --cfg files, then its --set overrides.
    A --cfg that is not a readable YAML file is one line naming it (and what it is, when it
    is a Caffe file: a prototxt, weights, a solver state)."""
    import yaml

    for path in args.cfg:
        check_file(path, "--cfg")
        try:
            yaml.safe_load(Path(path).read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            from rcnn.weights import read_caffe_file

            found = read_caffe_file(path)
            what = (found.describe() if found.kind not in ("text", "unknown") else
                    "not YAML (" + " ".join(str(e).split()) + ")")
            raise DatasetError(f"{path} (--cfg): {what}, expected a YAML config file") from None
    return load(*args.cfg, overrides=args.set_cfgs)


def setup_tool() -> None:
    """Logging, and process settings that must precede loading Caffe: quiet glog, and OpenMP
    threads that sleep instead of spinning between parallel regions (on few cores, spinning
    RoI-layer threads starve OpenBLAS's: training runs about 25 % faster than with the
    default, twice as fast as with OMP_WAIT_POLICY=active). Explicit settings win."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")


def one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


def run_tool(body: Callable[[], int], debug: bool) -> int:
    """body()'s exit status; a missing, unreadable or malformed input is logged as one line
    naming the file and what is wrong, and gives 2; NaN or inf reaching one of the net's
    Python layers (NonFiniteInput) is one line naming the layer and the input, and gives 3
    (with debug, either is raised instead)."""
    try:
        return body()
    except NonFiniteInput as e:
        if debug:
            raise
        log.error("non-finite numbers in the net (are the weights from a run that diverged?): "
                  "%s", one_line(e))
        return NON_FINITE_EXIT
    except USER_ERRORS as e:
        if debug:
            raise
        log.error("%s", one_line(e))
        return 2


def check_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {'no such file' if not path.exists() else 'not a file'} "
                           f"({what})")
    return path


def check_prototxt(path: str | Path, what: str, message: str = "NetParameter") -> Path:
    """A readable, well-formed prototxt of the kind `what` takes (Caffe itself would abort
    with a stack trace): a net (message NetParameter, with at least one layer) or a solver
    (SolverParameter). Another Caffe file in its place (weights, a solver state, the other
    kind of prototxt) is named as what it is."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from rcnn.weights import read_caffe_file

    path = check_file(path, what)
    expected = {"NetParameter": ("net_prototxt", "a net prototxt"),
                "SolverParameter": ("solver_prototxt", "a solver prototxt")}[message]
    found = read_caffe_file(path)
    if found.kind == expected[0]:
        return path
    if found.kind not in ("text", "unknown"):
        raise DatasetError(f"{path} ({what}): {found.describe()}, expected {expected[1]}")
    try:
        text_format.Merge(path.read_text(), getattr(caffe_pb2, message)())
    except text_format.ParseError as e:
        raise DatasetError(f"{path}: malformed prototxt ({e})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a text prototxt ({e.reason})") from None
    if message == "NetParameter":
        raise DatasetError(f"{path} ({what}): a net prototxt without layers")
    return path


def check_folder(path: str | Path, what: str) -> Path:
    """A folder, or a path where one can be made (an existing file is refused)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{path} ({what}): a file, expected a folder (or a new path)")
    return path


def check_output_file(path: str | Path, what: str) -> Path:
    """A path to write a file to: not a folder, and no file among its parent folders."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} ({what}): a folder, expected the path of a file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DatasetError(f"{path} ({what}): {parent} is a file, not a folder")
            break
    return path
