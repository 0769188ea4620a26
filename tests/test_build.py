"""The built Caffe: pycaffe imports, the tools run, and the patched caffe.proto parses
py-faster-rcnn's published prototxts."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def test_import_and_version(caffe):
    assert caffe.__version__ == "1.0.0"
    out = subprocess.run(["caffe", "--version"], capture_output=True, text=True, check=True)
    assert "caffe version 1.0.0" in out.stdout


def test_proto_fields_match_py_faster_rcnn(caffe):
    from caffe.proto import caffe_pb2

    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert fields["roi_pooling_param"].number == 8266711
    assert fields["smooth_l1_loss_param"].number == 8266712
    roi = caffe_pb2.ROIPoolingParameter()
    assert (roi.pooled_h, roi.pooled_w, roi.spatial_scale) == (0, 0, 1.0)
    assert roi.is_multi_interpolate and roi.sampling_ratio == -1
    assert roi.pool == caffe_pb2.ROIPoolingParameter.MAX
    assert roi.alignment == caffe_pb2.ROIPoolingParameter.CAFFE
    assert caffe_pb2.SmoothL1LossParameter().sigma == 1.0
    assert caffe_pb2.DropoutParameter().scale_train is True


def _prototxts(models: Path) -> list[Path]:
    files = sorted(models.rglob("*.prototxt"))
    assert files, f"no prototxt under {models}"
    return files


def test_caffe_parses_every_fixture_prototxt(caffe, shared_models, tmp_path):
    """Each net through Caffe's own C++ parser (upgrade_*_proto_text), and through pycaffe."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    tools = Path(shutil.which("caffe")).parent
    for path in _prototxts(shared_models):
        is_solver = path.name.startswith("solver")
        tool = tools / ("upgrade_solver_proto_text" if is_solver else "upgrade_net_proto_text")
        out = tmp_path / "out.prototxt"
        proc = subprocess.run([str(tool), str(path), str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr[-2000:]}"
        msg = caffe_pb2.SolverParameter() if is_solver else caffe_pb2.NetParameter()
        text_format.Merge(path.read_text(), msg)
        if not is_solver:
            assert len(msg.layer) > 0, path


def test_roi_layers_keep_their_parameters(caffe, shared_models):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    path = shared_models / "pascal_voc/VGG16/faster_rcnn_end2end/train.prototxt"
    net = text_format.Merge(path.read_text(), caffe_pb2.NetParameter())
    (roi,) = [layer for layer in net.layer if layer.type == "ROIPooling"]
    p = roi.roi_pooling_param
    assert (p.pooled_h, p.pooled_w) == (7, 7)
    assert p.spatial_scale == pytest.approx(1 / 16)
    losses = [layer for layer in net.layer if layer.type == "SmoothL1Loss"]
    assert losses


def test_caffe_tool_and_pycaffe_share_libpython(caffe):
    """The rpath makes the `caffe` tool load the same libpython as the interpreter."""
    import sysconfig

    libdir = sysconfig.get_config_var("LIBDIR")
    ldd = subprocess.run(["ldd", shutil.which("caffe")], capture_output=True, text=True).stdout
    line = next(x for x in ldd.splitlines() if "libpython" in x)
    target = line.split("=>")[1].split("(")[0].strip()
    assert os.path.realpath(target).startswith(os.path.realpath(libdir)), line


def test_caffe_build_names_the_pycaffe_folder_and_variant(caffe, monkeypatch):
    from rcnn.runtime import caffe_build

    monkeypatch.setenv("CAFFE_VARIANT", "cuda-roicpu")
    folder = Path(caffe.__file__).resolve().parent.parent
    assert caffe_build() == f"Caffe {caffe.__version__} from {folder} (cuda-roicpu variant)"
