"""The tools' errors: a bad path, an unreadable image, malformed XML, JSON or prototxt give
one line that names the file and what is wrong, and exit status 2; --debug shows the
traceback."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NET = ROOT / "models" / "small" / "roialign"
CFG = str(ROOT / "models" / "small" / "config.yml")


def voc(root: Path, xml: str = "<annotation></annotation>") -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "Annotations" / "a.xml").write_text(xml)
    Image.new("RGB", (8, 8)).save(root / "JPEGImages" / "a.jpg")
    return root


def cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (--data / --net arguments, what the error line must say)"""
    bad_xml = voc(tmp / "xml", "<annotation><object>")
    bad_image = voc(tmp / "image")
    (bad_image / "JPEGImages" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    bad_json = tmp / "bad.json"
    bad_json.write_text('{"images": [}')
    bad_net = tmp / "bad.prototxt"
    bad_net.write_text("layer { name: 'x' type: }")
    return {
        "path": (["--data", str(tmp / "missing")], f"{tmp / 'missing'}: no such dataset"),
        "xml": (["--data", str(bad_xml)], f"{bad_xml / 'Annotations' / 'a.xml'}: malformed XML"),
        "image": (["--data", str(bad_image)],
                  f"{bad_image / 'JPEGImages' / 'a.jpg'}: not a readable image"),
        "json": (["--data", str(bad_json)], f"{bad_json}: malformed JSON"),
        "prototxt": (["--data", str(bad_image), "--net", str(bad_net)],
                     f"{bad_net}: malformed prototxt"),
    }


@pytest.mark.parametrize("case", ["path", "xml", "image", "json", "prototxt"])
def test_train_and_test_net_errors_are_one_line(caffe, tmp_path, caplog, case):
    from rcnn.config import activate, load
    from rcnn.tools import test_net, train_net

    args, message = cases(tmp_path)[case]
    # real weights of the test net: an empty file is itself refused now (field report 5)
    weights = tmp_path / "w.caffemodel"
    activate(load(CFG))
    caffe.Net(str(NET / "test.prototxt"), caffe.TEST).save(str(weights))
    common = ["--cfg", CFG, *args]
    for tool, argv in ((train_net, ["--net", str(NET / "train.prototxt"), "--iters", "1",
                                    "--out", str(tmp_path / "out"), *common]),
                       (test_net, ["--net", str(NET / "test.prototxt"), "--weights",
                                   str(weights), "--out", str(tmp_path / "r.json"), *common])):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert tool.main(argv) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].startswith(message), errors
        assert "\n" not in errors[0]


def test_exit_status_2_without_traceback_and_debug_shows_it(tmp_path):
    env = dict(os.environ, GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "rcnn.tools.train_net", "--net",
            str(NET / "train.prototxt"), "--data", str(tmp_path / "missing"), "--iters", "1",
            "--out", str(tmp_path / "out"), "--cfg", CFG]
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"[rcnn] {tmp_path / 'missing'}: no such dataset (a VOC-format folder or a COCO JSON "
        "file)")
    assert "Traceback" not in r.stderr
    r = subprocess.run([*argv, "--debug"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" in r.stderr and "DatasetError" in r.stderr
