"""bench_roi: forward/backward wall time of our RoI layers against onnxruntime.

    python -m rcnn.bench.roi_speed [--threads 1 2] [--repeats 5] [--json out.json] [--gpu]

For each input configuration (VGG16 conv5 with 128 / 300 / 2000 RoIs; an FPN level with 512
RoIs at 7x7 and 14x14) and each thread count, times (median of --repeats after one warm-up)
our ROIAlign in four settings and ROIPooling (forward and backward), and onnxruntime's
RoiAlign and MaxRoiPool (forward). Each thread count runs in its own process, since OpenMP
reads OMP_NUM_THREADS at start-up. Prints a table and writes JSON. --gpu (CUDA builds) adds
GPU-mode times, which include copying one result back to the host to wait for the kernels,
and torchvision's CUDA roi_align and roi_pool where torchvision is installed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rcnn.roi_harness.nets import RoILayerRunner
from rcnn.roi_harness.onnx_reference import OrtRoiOp, max_roi_pool_op, roi_align_op
from rcnn.roi_harness.rois import proposal_like_rois

log = logging.getLogger("bench_roi")

INPUTS = {
    "vgg16_conv5_r128": ((1, 512, 38, 50), 1 / 16, 7, 128),
    "vgg16_conv5_r300": ((1, 512, 38, 50), 1 / 16, 7, 300),
    "vgg16_conv5_r2000": ((1, 512, 38, 50), 1 / 16, 7, 2000),
    "fpn_p3_7x7_r512": ((2, 256, 100, 136), 1 / 8, 7, 512),
    "fpn_p3_14x14_r512": ((2, 256, 100, 136), 1 / 8, 14, 512),
}

# name -> (layer type, roi_pooling_param extras, the matching onnxruntime op or None: a
# function of (x_shape, (pooled, pooled), spatial_scale, threads=...))
OURS: dict[str, tuple[str, dict[str, Any], Callable[..., OrtRoiOp] | None]] = {
    "ROIAlign seed (MAX, 2x2)": ("ROIAlign", {}, None),
    "ROIAlign AVE half_pixel sr2": (
        "ROIAlign", {"pool": "AVE", "alignment": "HALF_PIXEL", "sampling_ratio": 2},
        partial(roi_align_op, sampling_ratio=2, half_pixel=True)),
    "ROIAlign AVE adaptive": (
        "ROIAlign", {"pool": "AVE", "alignment": "DETECTRON", "sampling_ratio": 0},
        partial(roi_align_op, sampling_ratio=0, half_pixel=False)),
    "ROIAlign bicubic (MAX, 2x2)": ("ROIAlign", {"bi_type": 1}, None),
    "ROIPooling": ("ROIPooling", {}, max_roi_pool_op),
}


def make_inputs(shape, scale, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    rois = proposal_like_rois(rng, n, shape[0], shape[2] / scale, shape[3] / scale)
    return x, rois


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_one_thread_count(threads: int, repeats: int, inputs: list[str], gpu: bool):
    import caffe

    if gpu:
        caffe.set_mode_gpu()
        caffe.set_device(0)
    else:
        caffe.set_mode_cpu()
    rows = []

    def sync(blob) -> None:
        """In GPU mode, reading a result back waits for the kernels (and adds that copy)."""
        if gpu:
            blob.data.ravel()[:1]

    for key in inputs:
        shape, scale, pooled, n = INPUTS[key]
        x, rois = make_inputs(shape, scale, n)
        for name, (layer, params, ort_op) in OURS.items():
            runner = RoILayerRunner(layer, shape, n, pooled_h=pooled, pooled_w=pooled,
                                    spatial_scale=scale, **params)
            out = runner.forward(x, rois)
            top_diff = np.ones_like(out)
            fwd = median_time(lambda r=runner: (r.net.forward(), sync(r.net.blobs["out"])),
                              repeats)
            runner.net.blobs["out"].diff[...] = top_diff
            bwd = median_time(lambda r=runner: (r.net.backward(), sync(r.net.blobs["data"])),
                              repeats)
            row = {"input": key, "method": name, "threads": threads,
                   "device": "GPU" if gpu else "CPU", "forward_ms": 1e3 * fwd,
                   "backward_ms": 1e3 * bwd}
            if ort_op and not gpu:
                op = ort_op(shape, (pooled, pooled), scale, threads=threads)
                feed = op.feed(x, rois)
                row["onnxruntime_forward_ms"] = 1e3 * median_time(
                    lambda s=op.session, f=feed: s.run(None, f), repeats)
            rows.append(row)
            log.info("%s | %s | %d thread(s): forward %.2f ms, backward %.2f ms%s", key, name,
                     threads, row["forward_ms"], row["backward_ms"],
                     f", onnxruntime {row['onnxruntime_forward_ms']:.2f} ms"
                     if "onnxruntime_forward_ms" in row else "")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    pool = {(r["input"], r["threads"], r["device"]): r for r in rows
            if r["method"] == "ROIPooling"}
    rows = sorted(rows, key=lambda r: (r["device"], r["threads"]))
    head = (f"{'input':<20} {'method':<28} {'dev':<4} {'thr':>3} {'fwd ms':>9} {'bwd ms':>9} "
            f"{'bwd/fwd':>7} {'ORT ms':>9} {'ORT/ours':>8} {'/ROIPool':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ort_ms = r.get("onnxruntime_forward_ms")
        p = pool.get((r["input"], r["threads"], r["device"]))
        ort_cols = f"{ort_ms:9.2f} {ort_ms / r['forward_ms']:8.2f}" if ort_ms else " " * 18
        vs_pool = r["forward_ms"] / p["forward_ms"] if p else float("nan")
        lines.append(
            f"{r['input']:<20} {r['method']:<28} {r['device']:<4} {r['threads']:>3} "
            f"{r['forward_ms']:>9.2f} {r['backward_ms']:>9.2f} "
            f"{r['backward_ms'] / r['forward_ms']:>7.2f} {ort_cols} {vs_pool:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_roi", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+",
                    default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=list(INPUTS))
    ap.add_argument("--gpu", action="store_true", help="also time GPU mode (CUDA builds)")
    ap.add_argument("--json", default="output/bench/roi_speed.json")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if args.worker is not None:
        rows = run_one_thread_count(args.worker, args.repeats, args.inputs, args.gpu)
        print("ROWS" + json.dumps(rows))
        return 0
    rows: list[dict[str, Any]] = []
    runs = [(t, False) for t in args.threads] + ([(1, True)] if args.gpu else [])
    if args.gpu:
        try:
            from rcnn.bench.torchvision_gpu import time_torchvision

            rows += [dict(r, threads=1) for r in time_torchvision(
                args.repeats, {k: INPUTS[k] for k in args.inputs})]
        except ImportError:
            log.info("torchvision is not installed: no torchvision rows")
    for threads, gpu in runs:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
        env.pop("OMP_WAIT_POLICY", None)  # the OpenMP default, as docs/BENCHMARKS.md measured
        cmd = [sys.executable, "-m", "rcnn.bench.roi_speed", "--worker", str(threads),
               "--repeats", str(args.repeats), "--inputs", *args.inputs,
               *(["--gpu"] if gpu else [])]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            log.error("worker for %d thread(s) failed", threads)
            return proc.returncode
        rows += json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("ROWS"))[4:])
    print(table(rows))
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "repeats": args.repeats,
            "inputs": {k: {"shape": INPUTS[k][0], "spatial_scale": INPUTS[k][1],
                           "pooled": INPUTS[k][2], "rois": INPUTS[k][3]} for k in args.inputs}}
    try:
        import onnxruntime

        meta["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
