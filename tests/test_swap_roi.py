"""The swap_roi tool: round trips on py-faster-rcnn's prototxts, weights, and its errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rcnn.tools import swap_roi

ROOT = Path(__file__).resolve().parents[1]


def parse(path: Path):
    return swap_roi.read_net(path)


def test_round_trip_on_every_fixture(caffe, shared_models, tmp_path, capsys):
    prototxts = [p for p in sorted(shared_models.rglob("*.prototxt"))
                 if "ROIPooling" in p.read_text()]
    assert len(prototxts) >= 10
    for path in prototxts:
        a, b = tmp_path / "align.prototxt", tmp_path / "back.prototxt"
        assert swap_roi.main([str(path), str(a), "--set", "pool=AVE",
                              "--set", "sampling_ratio=2"]) == 0
        assert "ROIPooling -> ROIAlign pool=AVE sampling_ratio=2" in capsys.readouterr().out
        aligned = parse(a)
        roi_layers = [la for la in aligned.layer if la.type == "ROIAlign"]
        assert roi_layers and all(la.roi_pooling_param.sampling_ratio == 2 for la in roi_layers)
        assert not any(la.type == "ROIPooling" for la in aligned.layer)
        assert swap_roi.main([str(a), str(b), "--to", "ROIPooling"]) == 0
        assert parse(b) == parse(path), path


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
    """models/pascal_voc/<net>/faster_rcnn_end2end_roialign is what
    scripts/make_model_variants.sh makes from py-faster-rcnn's prototxts."""
    out = tmp_path / "o.prototxt"
    src = shared_models / "pascal_voc" / net / "faster_rcnn_end2end" / f"{phase}.prototxt"
    assert swap_roi.main([str(src), str(out), "--set", "pool=AVE", "--set",
                          "alignment=HALF_PIXEL", "--set", "sampling_ratio=2"]) == 0
    committed = (ROOT / "models/pascal_voc" / net / "faster_rcnn_end2end_roialign"
                 / f"{phase}.prototxt")
    assert parse(committed) == parse(out)
