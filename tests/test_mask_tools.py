"""The tools on a Mask R-CNN with data a new user brings: a dataset without masks at test
time, a dataset with another class count, pictures of images of mixed sizes and bit depths."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets.synthetic import SyntheticSpec, generate
from rcnn.models import write_small_models

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "models" / "small" / "config.yml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, caffe):
    """A mask model trained 2 iterations on a tiny synthetic set (weights only matter for
    shapes here)."""
    from rcnn.tools import train_net

    root = tmp_path_factory.mktemp("mask_tools")
    data = generate(root / "data", 4, 3, SyntheticSpec(seed=9))
    nets = write_small_models(root / "models", 5, ["mask_roialign"])["mask_roialign"]
    assert train_net.main(["--net", str(nets["train"]), "--data", str(data), "--cfg", CFG,
                           "--out", str(root / "run"), "--iters", "2"]) == 0
    return data, nets, root / "run" / "model_iter_2.caffemodel"


def _without_masks(data: Path, out: Path) -> Path:
    shutil.copytree(data, out, ignore=shutil.ignore_patterns("Segmentation*", "*.json"))
    return out


def test_test_net_on_data_without_masks_gives_box_figures(trained, tmp_path, caplog):
    from rcnn.tools import test_net

    data, nets, weights = trained
    plain = _without_masks(data, tmp_path / "plain")
    out = tmp_path / "r.json"
    assert test_net.main(["--net", str(nets["test"]), "--weights", str(weights), "--data",
                          str(plain), "--cfg", CFG, "--out", str(out)]) == 0


    r = json.loads(out.read_text())
    assert "mask" not in r and "ap" in r["mean"]
    assert "has no instance masks" in caplog.text


def test_a_dataset_with_another_class_count_is_one_line(trained, tmp_path, caplog):
    from rcnn.tools import test_net, train_net

    data, nets, weights = trained
    other = Path(shutil.copytree(data, tmp_path / "six"))
    (other / "classes.txt").write_text("circle\nsquare\ntriangle\ncross\nstar\n")
    for tool, args in ((test_net, ["--net", str(nets["test"]), "--weights", str(weights),
                                   "--out", str(tmp_path / "r.json")]),
                       (train_net, ["--net", str(nets["train"]), "--iters", "1", "--out",
                                    str(tmp_path / "run")])):
        caplog.clear()
        assert tool.main([*args, "--data", str(other), "--cfg", CFG]) == 2
        assert "classifies 5 classes (background included)" in caplog.text
        assert "has 6" in caplog.text


def test_demo_draws_mixed_sizes_and_16_bit_images_as_the_detector_sees_them(trained,
                                                                              tmp_path):
    from rcnn.tools import demo

    data, nets, weights = trained
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((120, 300, 3), 200, np.uint8)).save(wide)
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.full((100, 100), 40000, np.uint16)).save(grey16)
    out = tmp_path / "demo.png"
    first = sorted((Path(data) / "JPEGImages").glob("*.jpg"))[0]
    assert demo.main(["--net", str(nets["test"]), "--weights", str(weights), "--images",
                      str(first), str(wide), str(grey16), "--classes", "circle", "square",
                      "triangle", "cross", "--cfg", CFG, "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out).convert("RGB"))
    # three cells of the largest image's size (enlarged 2x: 512 x 512), side by side
    assert picture.shape == (512, 3 * 600, 3)
    # the 16-bit grey image drawn at 40000 >> 8 = 156, not white
    cell = picture[:200, 1200:1400]
    assert abs(int(np.median(cell)) - 156) <= 1


def test_overlay_mask_fills_translucently_and_outlines():
    from rcnn.plots import overlay_mask

    im = Image.new("RGB", (20, 10), (0, 0, 0))
    mask = np.zeros((10, 20), np.uint8)
    mask[2:8, 5:15] = 1
    out = np.asarray(overlay_mask(im, mask, (200, 100, 0), alpha=0.5)).astype(int)
    assert (out[5, 10] == [100, 50, 0]).all()        # inside: half the colour
    assert (out[2, 10] == [200, 100, 0]).all()       # the outline: the colour
    assert (out[5, 5] == [200, 100, 0]).all()
    assert (out[0, 0] == 0).all() and (out[9, 19] == 0).all()   # outside: untouched
    big = np.asarray(overlay_mask(Image.new("RGB", (40, 20)), mask, (255, 0, 0)))
    assert big[4:16, 10:30, 0].min() > 0 and big[:4].max() == 0   # enlarged with the picture
    with pytest.raises(ValueError, match="mask on a"):
        overlay_mask(Image.new("RGB", (30, 10)), mask, (255, 0, 0))
