"""The swap_roi tool: round trips on py-faster-rcnn's prototxts, weights, and its errors."""
from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rcnn.tools import swap_roi

ROOT = Path(__file__).resolve().parents[1]


def parse(path: Path):
    return swap_roi.read_net(path)


def fixture_prototxts(shared_models: Path) -> list[Path]:
    paths = [p for p in sorted(shared_models.rglob("*.prototxt")) if "ROIPooling" in p.read_text()]
    assert len(paths) >= 10
    return paths


def roi_layer_lines(lines: list[str]) -> set[int]:
    """Indices of the lines of the RoI layers in a py-faster-rcnn prototxt (found without
    swap_roi: each layer there opens with `layer {` and closes with `}` at column 0)."""
    inside: set[int] = set()
    for i, line in enumerate(lines):
        if line.strip() in ('type: "ROIPooling"', 'type: "ROIAlign"'):
            start = max(j for j in range(i) if lines[j].startswith("layer {"))
            end = min(j for j in range(i, len(lines)) if lines[j].rstrip() == "}")
            inside.update(range(start, end + 1))
    return inside


def swapped_net(path: Path, to: str, settings: dict[str, object]):
    net = parse(path)
    swap_roi.swap(net, to, settings)
    return net


def test_fixtures_change_only_in_their_roi_layers(caffe, shared_models, tmp_path, capsys):
    for path in fixture_prototxts(shared_models):
        a, b = tmp_path / "align.prototxt", tmp_path / "back.prototxt"
        assert swap_roi.main([str(path), str(a), "--set", "pool=AVE",
                              "--set", "sampling_ratio=2"]) == 0
        assert "ROIPooling -> ROIAlign pool=AVE sampling_ratio=2" in capsys.readouterr().out
        before, after = path.read_text().splitlines(), a.read_text().splitlines()
        roi_lines = roi_layer_lines(before)
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
            if op == "equal":
                continue
            assert set(range(i1, i2)) <= roi_lines and (i1 in roi_lines or i1 - 1 in roi_lines)
            if op == "replace":
                assert [line.replace("ROIPooling", "ROIAlign") for line in before[i1:i2]] \
                    == after[j1:j2], path
            else:
                assert op == "insert" and after[j1:j2] == ["    pool: AVE",
                                                           "    sampling_ratio: 2"], path
        assert a.read_text().count("# 1/16") == path.read_text().count("# 1/16")
        assert parse(a) == swapped_net(path, "ROIAlign", {"pool": 1, "sampling_ratio": 2})
        assert swap_roi.main([str(a), str(b), "--to", "ROIPooling"]) == 0
        assert b.read_bytes() == path.read_bytes(), path


def test_changed_value_loses_only_its_comment(caffe, shared_models, tmp_path):
    src = shared_models / "pascal_voc/VGG16/faster_rcnn_end2end/test.prototxt"
    out = tmp_path / "o.prototxt"
    assert swap_roi.main([str(src), str(out), "--set", "spatial_scale=0.125",
                          "--set", "pooled_w=7"]) == 0
    diff = [line for line in difflib.unified_diff(src.read_text().splitlines(),
                                                  out.read_text().splitlines(), n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    # pooled_w was 7 already: its line stays as it is.
    assert diff == ['-  type: "ROIPooling"', '+  type: "ROIAlign"',
                    "-    spatial_scale: 0.0625 # 1/16", "+    spatial_scale: 0.125"]
    assert parse(out) == swapped_net(src, "ROIAlign", {"spatial_scale": 0.125, "pooled_w": 7})


TRICKY = """name: "t"  # a net
layer{name:"r1" type:'ROIPooling' bottom:"a" bottom:"b" top:"c" roi_pooling_param{pooled_h:2 pooled_w:2 spatial_scale:1}}
layer {
  name: "r2"   # second
  type: "ROIPooling"  # was pooling
  bottom: "a" bottom: "b" top: "d"
  roi_pooling_param {
    # size
    pooled_h: 7  # h
    pooled_w: 7
    spatial_scale: 0.0625 # 1/16
  }
}
layer { name: "relu" type: "ReLU" bottom: "d" top: "d" }  # type: "ROIPooling" { in a comment
layer { name: "r3" type: "ROIPooling" bottom: "a" bottom: "b" top: "e" }
layer {
  name: "r4 {"
  type: "ROIPooling"
  bottom: "a" bottom: "b" top: "f"
}
layer: < name: "r5" type: "ROIPooling" roi_pooling_param < pooled_h: 1 > >
"""  # noqa: E501
TRICKY_ALIGNED = """name: "t"  # a net
layer{name:"r1" type:'ROIAlign' bottom:"a" bottom:"b" top:"c" roi_pooling_param{pooled_h:2 pooled_w:2 spatial_scale:1 pool: AVE sampling_ratio: 2}}
layer {
  name: "r2"   # second
  type: "ROIAlign"  # was pooling
  bottom: "a" bottom: "b" top: "d"
  roi_pooling_param {
    # size
    pooled_h: 7  # h
    pooled_w: 7
    spatial_scale: 0.0625 # 1/16
    pool: AVE
    sampling_ratio: 2
  }
}
layer { name: "relu" type: "ReLU" bottom: "d" top: "d" }  # type: "ROIPooling" { in a comment
layer { name: "r3" type: "ROIAlign" bottom: "a" bottom: "b" top: "e" roi_pooling_param { pool: AVE sampling_ratio: 2 } }
layer {
  name: "r4 {"
  type: "ROIAlign"
  bottom: "a" bottom: "b" top: "f"
  roi_pooling_param {
    pool: AVE
    sampling_ratio: 2
  }
}
layer: < name: "r5" type: "ROIAlign" roi_pooling_param < pooled_h: 1 pool: AVE sampling_ratio: 2 > >
"""  # noqa: E501


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_tricky_layouts(caffe, tmp_path, newline):
    """One-line blocks, `layer{`, comments and braces in comments and strings, RoI layers with
    no roi_pooling_param, `< >` messages, CRLF line ends."""
    src, out, back = (tmp_path / f"{n}.prototxt" for n in ("src", "out", "back"))
    src.write_bytes(TRICKY.replace("\n", newline).encode())
    settings = ["--set", "pool=AVE", "--set", "sampling_ratio=2"]
    assert swap_roi.main([str(src), str(out), *settings]) == 0
    assert out.read_bytes() == TRICKY_ALIGNED.replace("\n", newline).encode()
    assert parse(out) == swapped_net(src, "ROIAlign", {"pool": 1, "sampling_ratio": 2})
    assert swap_roi.main([str(out), str(back), "--to", "ROIPooling"]) == 0
    # Byte for byte, but for the roi_pooling_param blocks the swap added (now empty).
    expected = (TRICKY.replace('top: "e" }', 'top: "e" roi_pooling_param { } }')
                .replace('top: "f"\n}', 'top: "f"\n  roi_pooling_param {\n  }\n}'))
    assert back.read_bytes() == expected.replace("\n", newline).encode()
    assert parse(back) == swapped_net(out, "ROIPooling", {})


def test_to_roipooling_removes_only_roialign_fields(caffe, tmp_path):
    src, out = tmp_path / "a.prototxt", tmp_path / "p.prototxt"
    src.write_text('layer { name: "r" type: "ROIAlign"\n'
                   "  roi_pooling_param { pooled_h: 2 pool: AVE sampling_ratio: 2 }\n"
                   "  roi_pooling_param {\n"
                   "    pool: AVE  # average\n"
                   "    spatial_scale: 0.5\n"
                   "    alignment: HALF_PIXEL\n"
                   "    bi_type: 1\n"
                   "  }\n"
                   "}\n")
    assert swap_roi.main([str(src), str(out), "--to", "ROIPooling",
                          "--set", "pooled_w=3"]) == 0
    assert out.read_text() == ('layer { name: "r" type: "ROIPooling"\n'
                               "  roi_pooling_param { pooled_h: 2 }\n"
                               "  roi_pooling_param {\n"
                               "    spatial_scale: 0.5\n"
                               "    pooled_w: 3\n"
                               "  }\n"
                               "}\n")


def test_text_that_cannot_be_edited_in_place_is_refused(caffe, tmp_path, capsys, monkeypatch):
    src, out = tmp_path / "in.prototxt", tmp_path / "out.prototxt"
    src.write_text('layer [{ name: "r" type: "ROIPooling" }]\n')  # list syntax
    assert swap_roi.main([str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert "in.prototxt: cannot edit the text in place" in err and len(err.splitlines()) == 1
    assert not out.exists()
    # Whatever the editor writes is parsed back and compared with swap()'s net.
    src.write_text('layer { name: "r" type: "ROIPooling" }\n')
    monkeypatch.setattr(swap_roi, "swap_text", lambda text, *args: text)
    assert swap_roi.main([str(src), str(out)]) == 2
    assert "in.prototxt: editing the text in place gave a different net" in capsys.readouterr().err
    assert not out.exists()


def test_prints_changed_layers(caffe, shared_models, tmp_path):
    src = shared_models / "pascal_voc/ZF/faster_rcnn_end2end/test.prototxt"
    proc = subprocess.run([sys.executable, "-m", "rcnn.tools.swap_roi", str(src),
                           str(tmp_path / "o.prototxt"), "--set", "alignment=HALF_PIXEL"],
                          capture_output=True, text=True, cwd=ROOT / "python")
    assert proc.returncode == 0, proc.stderr
    assert "layer 'roi_pool_conv5': ROIPooling -> ROIAlign alignment=HALF_PIXEL" in proc.stdout
    # Also runnable as a plain script.
    proc = subprocess.run([sys.executable, str(ROOT / "python/rcnn/tools/swap_roi.py"),
                           str(src), str(tmp_path / "p.prototxt")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--set", "pooled=7"], "roi_pooling_param has no field 'pooled'"),
    (["--set", "pool=MEDIAN"], "pool must be one of MAX, AVE"),
    (["--set", "sampling_ratio=two"], "sampling_ratio must be an integer"),
    (["--set", "bi_type=-1"], "bi_type must be a non-negative integer"),
    (["--set", "spatial_scale"], "expected FIELD=VALUE"),
    (["--to", "ROIPooling", "--set", "pool=AVE"], "ROIPooling uses only"),
])
def test_bad_set_is_refused(caffe, tmp_path, args, message, capsys):
    src = tmp_path / "in.prototxt"
    src.write_text('layer { name: "r" type: "ROIPooling" bottom: "a" bottom: "b" top: "c" }\n')
    assert swap_roi.main([str(src), str(tmp_path / "out.prototxt"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.prototxt").exists()


def test_unparseable_and_roi_free_inputs_are_refused(caffe, tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { name: 'x' type: 'ROIPooling' roi_pooling_param { pooled_q: 3 } }\n")
    assert swap_roi.main([str(bad), str(tmp_path / "o.prototxt")]) == 2
    err = capsys.readouterr().err
    assert "bad.prototxt: does not parse as a prototxt" in err and "pooled_q" in err
    bin_bad = tmp_path / "bad.caffemodel"
    bin_bad.write_bytes(b"\xff\xff\xff\xff not protobuf")
    assert swap_roi.main([str(bin_bad), str(tmp_path / "o.caffemodel")]) == 2
    assert "does not parse as a binary NetParameter" in capsys.readouterr().err
    plain = tmp_path / "plain.prototxt"
    plain.write_text('layer { name: "r" type: "ReLU" bottom: "a" top: "a" }\n')
    assert swap_roi.main([str(plain), str(tmp_path / "o.prototxt")]) == 2
    assert "no ROIPooling or ROIAlign layer found" in capsys.readouterr().err


NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "rois" type: "Input" top: "rois" input_param { shape { dim: 2 dim: 5 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
                      weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "roi_pool" type: "ROIPooling" bottom: "conv1" bottom: "rois" top: "pool"
  roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def test_weights_carry_over(caffe, tmp_path):
    """A .caffemodel trained with ROIPooling loads into the swapped net, every layer found."""
    proto = tmp_path / "pool.prototxt"
    proto.write_text(NET)
    net = caffe.Net(str(proto), caffe.TEST)
    weights = tmp_path / "pool.caffemodel"
    net.save(str(weights))
    swapped_model = tmp_path / "align.caffemodel"
    assert swap_roi.main([str(weights), str(swapped_model)]) == 0
    assert any(la.type == "ROIAlign" for la in parse(swapped_model).layer)
    swapped = tmp_path / "align.prototxt"
    assert swap_roi.main([str(proto), str(swapped)]) == 0
    net2 = caffe.Net(str(swapped), caffe.TEST, weights=str(weights))
    assert set(net2.params) == set(net.params) == {"conv1", "fc"}
    for name in net.params:
        for a, b in zip(net.params[name], net2.params[name], strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    net2.blobs["data"].data[...] = 1
    net2.blobs["rois"].data[...] = [[0, 0, 0, 15, 15], [0, 2, 2, 9, 9]]
    assert np.isfinite(net2.forward()["fc"]).all()


@pytest.mark.parametrize("net", ["VGG16", "ZF"])
@pytest.mark.parametrize("phase", ["train", "test"])
def test_committed_roialign_models_are_swapped_fixtures(caffe, shared_models, tmp_path, net,
                                                        phase):
    """models/pascal_voc/<net>/faster_rcnn_end2end_roialign is, byte for byte, what
    scripts/make_model_variants.sh makes from py-faster-rcnn's prototxts."""
    out = tmp_path / "o.prototxt"
    src = shared_models / "pascal_voc" / net / "faster_rcnn_end2end" / f"{phase}.prototxt"
    assert swap_roi.main([str(src), str(out), "--set", "pool=AVE", "--set",
                          "alignment=HALF_PIXEL", "--set", "sampling_ratio=2"]) == 0
    committed = (ROOT / "models/pascal_voc" / net / "faster_rcnn_end2end_roialign"
                 / f"{phase}.prototxt")
    assert committed.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("value,number", [("BIN_CORNERS", 3), ("CROP_AND_RESIZE", 4), ("3", 3)])
def test_new_alignments_are_known(caffe, tmp_path, value, number, capsys):
    src, out = tmp_path / "in.prototxt", tmp_path / "out.prototxt"
    src.write_text('layer { name: "r" type: "ROIPooling" bottom: "a" bottom: "b" top: "c" }\n')
    assert swap_roi.main([str(src), str(out), "--set", f"alignment={value}"]) == 0
    name = "BIN_CORNERS" if number == 3 else "CROP_AND_RESIZE"
    assert f"ROIPooling -> ROIAlign alignment={name}" in capsys.readouterr().out
    assert parse(out).layer[0].roi_pooling_param.alignment == number
    assert f"alignment: {name}" in out.read_text()


@pytest.mark.parametrize("args,message", [
    (["--set", "alignment=DIAGONAL"],
     "alignment must be one of CAFFE, DETECTRON, HALF_PIXEL, BIN_CORNERS, CROP_AND_RESIZE"),
    (["--set", "alignment=BIN_CORNERS", "--set", "sampling_ratio=0"],
     "layer 'r' (ROIAlign): alignment BIN_CORNERS has no adaptive grid; sampling_ratio must "
     "be -1 or >= 1, got 0"),
    (["--set", "alignment=CROP_AND_RESIZE", "--set", "bi_type=1"],
     "layer 'r' (ROIAlign): alignment CROP_AND_RESIZE is defined for bilinear sampling only; "
     "bi_type must be 0, got 1"),
    (["--set", "alignment=BIN_CORNERS"],    # the file's bi_type: 1 stays
     "alignment BIN_CORNERS is defined for bilinear sampling only"),
])
def test_refused_alignment_settings(caffe, tmp_path, args, message, capsys):
    src = tmp_path / "in.prototxt"
    bicubic = " roi_pooling_param { bi_type: 1 }" if len(args) == 2 and "BIN" in args[1] else ""
    src.write_text(f'layer {{ name: "r" type: "ROIAlign" bottom: "a" bottom: "b" top: "c"'
                   f"{bicubic} }}\n")
    assert swap_roi.main([str(src), str(tmp_path / "out.prototxt"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.prototxt").exists()


PYRAMID_NET = """name: "fpn"
layer { name: "rois" type: "Input" top: "rois" input_param { shape { dim: 2 dim: 5 } } }
layer { name: "p2" type: "Input" top: "p2" input_param { shape { dim: 1 dim: 2 dim: 16 dim: 16 } } }
layer { name: "p3" type: "Input" top: "p3" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer {
  name: "box_pool"  # multi-level
  type: "PyramidROIAlign"
  bottom: "rois" bottom: "p2" bottom: "p3" top: "box"
  roi_pooling_param {
    pooled_h: 2
    pooled_w: 2
    pool: AVE  # average
  }
  pyramid_roi_param { spatial_scale: 0.25 spatial_scale: 0.125 level_rule: ROUND }
}
layer { name: "single" type: "ROIPooling" bottom: "p2" bottom: "rois" top: "one"
  roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 0.25 } }
"""  # noqa: E501


def test_pyramid_layers_keep_their_type(caffe, tmp_path, capsys):
    """--set reaches PyramidROIAlign's roi_pooling_param (not spatial_scale: one per level is
    in pyramid_roi_param); its type, pyramid_roi_param and layout stay; the net loads."""
    src, out = tmp_path / "fpn.prototxt", tmp_path / "out.prototxt"
    src.write_text(PYRAMID_NET)
    assert swap_roi.main([str(src), str(out), "--set", "alignment=BIN_CORNERS",
                          "--set", "spatial_scale=0.25", "--set", "pool=MAX"]) == 0
    report = capsys.readouterr().out
    assert ("layer 'box_pool': PyramidROIAlign (type kept) alignment=BIN_CORNERS pool=MAX "
            "(spatial_scale not set: PyramidROIAlign takes one per level from "
            "pyramid_roi_param)") in report
    assert "layer 'single': ROIPooling -> ROIAlign alignment=BIN_CORNERS" in report
    assert "(2 RoI layers changed)" in report
    want = (PYRAMID_NET.replace("    pool: AVE  # average\n", "    pool: MAX\n    "
                                "alignment: BIN_CORNERS\n")
            .replace('type: "ROIPooling"', 'type: "ROIAlign"')
            .replace("spatial_scale: 0.25 } }", "spatial_scale: 0.25 alignment: BIN_CORNERS "
                     "pool: MAX } }"))
    assert out.read_text() == want
    assert parse(out) == swapped_net(src, "ROIAlign", {"alignment": 3, "spatial_scale": 0.25,
                                                       "pool": 0})
    net = caffe.Net(str(out), caffe.TEST)
    net.blobs["rois"].data[...] = [[0, 0, 0, 40, 40], [0, 8, 8, 60, 30]]
    assert net.forward()["box"].shape == (2, 2, 2, 2)


def test_pyramid_layers_stay_when_swapping_to_roipooling(caffe, tmp_path, capsys):
    src, out = tmp_path / "fpn.prototxt", tmp_path / "out.prototxt"
    src.write_text(PYRAMID_NET.replace('"ROIPooling"', '"ROIAlign"'))
    assert swap_roi.main([str(src), str(out), "--to", "ROIPooling"]) == 0
    report = capsys.readouterr().out
    assert ("layer 'box_pool': PyramidROIAlign kept as it is (multi-level: no ROIPooling "
            "equivalent)") in report
    assert out.read_text() == PYRAMID_NET
    only = tmp_path / "only.prototxt"
    only.write_text("\n".join(PYRAMID_NET.splitlines()[:-2]) + "\n")
    assert swap_roi.main([str(only), str(out)]) == 2
    assert ("no ROIPooling or ROIAlign layer found (PyramidROIAlign layers keep their type: "
            "box_pool; --set changes their roi_pooling_param)") in capsys.readouterr().err
    assert swap_roi.main([str(only), str(out), "--set", "sampling_ratio=2"]) == 0
    assert parse(out).layer[3].roi_pooling_param.sampling_ratio == 2
