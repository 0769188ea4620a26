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
