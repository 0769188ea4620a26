"""bench-roi's optional IPEX anchor columns: left out with one note where the IPEX virtualenv
(scripts/ipex_venv.sh) is absent; where it exists, IPEX's RoIAlign as ipex_anchor.py runs it
agrees with onnxruntime's RoiAlign."""
from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rcnn.bench import roi_speed
from rcnn.roi_harness.onnx_reference import roi_align_op
from rcnn.roi_harness.rois import proposal_like_rois


def _row(method: str, **extra) -> dict:
    return {"input": "vgg16_conv5_r128", "method": method, "threads": 1, "device": "CPU",
            "forward_ms": 2.0, "backward_ms": 3.0, **extra}


def test_absent_venv_leaves_ipex_columns_out(tmp_path, monkeypatch):
    monkeypatch.setenv("IPEX_VENV", str(tmp_path / "no-such-venv"))
    assert roi_speed.ipex_python() is None
    note = roi_speed.ipex_skip_note()
    assert "bash scripts/ipex_venv.sh" in note and str(tmp_path / "no-such-venv") in note
    rows = [_row("ROIAlign AVE half_pixel sr2", onnxruntime_forward_ms=8.0,
                 ipex_case="x"), _row("ROIPooling")]
    roi_speed.add_ipex_columns(rows, None, 1)          # an anchor run that gave nothing
    assert all(not any(k.startswith("ipex") for k in r) for r in rows)
    assert "IPEX" not in roi_speed.table(rows)


def test_ipex_columns_in_table_and_rows():
    rows = [_row("ROIAlign AVE adaptive", ipex_case="c"), _row("ROIPooling")]
    result = {"cases": {"c": {"cl_forward_ms": 1.5, "cl_backward_ms": 2.5,
                              "nchw_conv_forward_ms": 3.5, "nchw_conv_backward_ms": 4.5,
                              "max_abs_diff_forward": 1e-6, "max_abs_diff_backward": 2e-6}}}
    roi_speed.add_ipex_columns(rows, result, 1)
    assert rows[0]["ipex_cl_forward_ms"] == 1.5 and rows[0]["ipex_nchw_conv_backward_ms"] == 4.5
    assert rows[0]["ipex_max_abs_diff_forward"] == 1e-6 and "ipex_case" not in rows[0]
    text = roi_speed.table(rows)
    assert "IPEX CL fwd/bwd" in text and "IPEX NCHW+conv fwd/bwd" in text
    assert "1.50/2.50" in text and "3.50/4.50" in text


def test_bench_roi_without_venv_skips_columns_with_one_note(caffe, tmp_path, monkeypatch,
                                                            capsys, caplog):
    monkeypatch.setenv("IPEX_VENV", str(tmp_path / "no-such-venv"))
    caplog.set_level(logging.INFO, logger="bench_roi")
    out = tmp_path / "roi_speed.json"
    assert roi_speed.main(["--inputs", "vgg16_conv5_r128", "--threads", "1", "--repeats", "1",
                           "--json", str(out)]) == 0
    notes = [r.getMessage() for r in caplog.records if "IPEX" in r.getMessage()]
    assert len(notes) == 1 and "bash scripts/ipex_venv.sh" in notes[0]
    assert "IPEX" not in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert "bash scripts/ipex_venv.sh" in data["meta"]["ipex"]["skipped"]
    assert data["rows"] and all(not any(k.startswith("ipex") for k in r) for r in data["rows"])


@pytest.mark.parametrize("name", list(roi_speed.IPEX_ROWS))
def test_ipex_anchor_forward_matches_onnxruntime(name, tmp_path):
    python = roi_speed.ipex_python()
    if python is None:
        pytest.skip(roi_speed.ipex_skip_note())
    sampling_ratio, aligned = roi_speed.IPEX_ROWS[name]
    rng = np.random.default_rng(3)
    shape, scale, pooled = (2, 24, 30, 40), 1 / 8, 7
    x = rng.standard_normal(shape).astype(np.float32)
    rois = proposal_like_rois(rng, 64, shape[0], shape[2] / scale, shape[3] / scale)
    ref = roi_align_op(shape, (pooled, pooled), scale, sampling_ratio=sampling_ratio,
                       half_pixel=aligned)(x, rois)
    case = tmp_path / "case.npz"
    np.savez(case, x=x, rois=rois, spatial_scale=scale, pooled_h=pooled, pooled_w=pooled,
             sampling_ratio=sampling_ratio, aligned=aligned, ref=ref)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(roi_speed.IPEX_ANCHOR), "--threads", "1",
                           "--repeats", "1", "--warmup", "0", "--save", str(tmp_path), str(case)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])["cases"]["case"]
    out = np.load(Path(tmp_path) / "case.out.npy")
    assert out.shape == ref.shape
    assert float(np.max(np.abs(out - ref))) < 1e-4
    assert rec["max_abs_diff_forward"] < 1e-4 and rec["max_abs_diff_cl_vs_nchw_conv"] == 0
    assert all(rec[k] > 0 for k in ("cl_forward_ms", "cl_backward_ms", "nchw_conv_forward_ms",
                                    "nchw_conv_backward_ms"))
