"""bench_roi: forward/backward wall time of our RoI layers against onnxruntime.

    python -m rcnn.bench.roi_speed [--threads 1 2] [--repeats 5] [--json out.json] [--gpu]

For each input configuration (VGG16 conv5 with 128 / 300 / 2000 RoIs; an FPN level with 512
RoIs at 7x7 and 14x14) and each thread count, times (median of --repeats after one warm-up)
our ROIAlign in four settings and ROIPooling (forward and backward), and onnxruntime's
RoiAlign and MaxRoiPool (forward). Each thread count runs in its own process, since OpenMP
reads OMP_NUM_THREADS at start-up. Prints a table and writes JSON. --gpu (CUDA builds) adds
GPU-mode times, which include copying one result back to the host to wait for the kernels,
and torchvision's CUDA roi_align and roi_pool where torchvision is installed.

The pyramid input (fpn_p2p5_r1000: P2-P5 of an 800 x 1088 image, 1000 proposal-like RoIs over
all levels, 7x7, AVE, DETECTRON alignment, sampling_ratio 2 and adaptive) times
PyramidROIAlign against two single-level baselines on the same RoIs: ROIAlign on each RoI's
own level (one ROIAlign per level on that level's RoIs, times summed: the same work without
the level dispatch) and ROIAlign on P3 for every RoI. A second table gives the ratios.

Optional anchor: Intel Extension for PyTorch (IPEX) 2.8's RoIAlign on the AVE half_pixel sr2
(torchvision aligned=True) and AVE adaptive (DETECTRON alignment = aligned=False, sampling_ratio
0) rows, forward and backward, channels_last in and out ("IPEX CL") and NCHW in and out with the
layout conversions timed ("IPEX NCHW+conv"): rcnn/bench/ipex_anchor.py, run per thread count by
the python of a separate virtualenv (scripts/ipex_venv.sh; $IPEX_VENV, default build/ipex-venv)
on the same inputs, its forward checked against onnxruntime's and its backward against ours.
Without that virtualenv (or with --no-ipex) the columns are left out, with a note.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rcnn.roi_harness.nets import PyramidRunner, RoILayerRunner
from rcnn.roi_harness.onnx_reference import OrtRoiOp, max_roi_pool_op, roi_align_op
from rcnn.roi_harness.rois import fpn_levels, proposal_like_rois

log = logging.getLogger("bench_roi")

INPUTS = {
    "vgg16_conv5_r128": ((1, 512, 38, 50), 1 / 16, 7, 128),
    "vgg16_conv5_r300": ((1, 512, 38, 50), 1 / 16, 7, 300),
    "vgg16_conv5_r2000": ((1, 512, 38, 50), 1 / 16, 7, 2000),
    "fpn_p3_7x7_r512": ((2, 256, 100, 136), 1 / 8, 7, 512),
    "fpn_p3_14x14_r512": ((2, 256, 100, 136), 1 / 8, 14, 512),
}

# name -> (feature map shapes finest first, their spatial scales, pooled, RoIs, image (h, w))
PYRAMID_INPUTS: dict[str, tuple[list[tuple[int, ...]], list[float], int, int,
                                tuple[int, int]]] = {
    "fpn_p2p5_r1000": ([(1, 256, 200, 272), (1, 256, 100, 136), (1, 256, 50, 68),
                        (1, 256, 25, 34)], [1 / 4, 1 / 8, 1 / 16, 1 / 32], 7, 1000, (800, 1088)),
}
# The pyramid input's settings (AVE, DETECTRON alignment): name -> roi_pooling_param
PYRAMID_SETTINGS: dict[str, dict[str, Any]] = {
    "sr2": {"pool": "AVE", "alignment": "DETECTRON", "sampling_ratio": 2},
    "adaptive": {"pool": "AVE", "alignment": "DETECTRON", "sampling_ratio": 0},
}
PYRAMID = "PyramidROIAlign"
PER_LEVEL = "ROIAlign own level"    # one ROIAlign per level on its RoIs, times summed
ON_P3 = "ROIAlign P3 all"

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

# The rows with an IPEX anchor: name -> IPEX RoIAlign's (sampling_ratio, aligned). torchvision's
# (and IPEX's) aligned=True is our HALF_PIXEL alignment, aligned=False our DETECTRON (RoI sides
# at least 1); sampling_ratio 0 is adaptive in all three.
IPEX_ROWS: dict[str, tuple[int, bool]] = {
    "ROIAlign AVE half_pixel sr2": (2, True),
    "ROIAlign AVE adaptive": (0, False),
}
ROOT = Path(__file__).resolve().parents[3]
IPEX_ANCHOR = Path(__file__).resolve().with_name("ipex_anchor.py")
IPEX_HOWTO = "bash scripts/ipex_venv.sh"
# ipex_anchor's record -> the row's keys
IPEX_KEYS = {"cl_forward_ms": "ipex_cl_forward_ms", "cl_backward_ms": "ipex_cl_backward_ms",
             "nchw_conv_forward_ms": "ipex_nchw_conv_forward_ms",
             "nchw_conv_backward_ms": "ipex_nchw_conv_backward_ms",
             "max_abs_diff_forward": "ipex_max_abs_diff_forward",
             "max_abs_diff_backward": "ipex_max_abs_diff_backward"}
IPEX_TOLERANCE = 1e-4   # forward agreement with onnxruntime below which no warning is logged


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


def sync_blob(gpu: bool, blob) -> None:
    """In GPU mode, reading a result back waits for the kernels (and adds that copy)."""
    if gpu:
        blob.data.ravel()[:1]


def time_net(net, top: str, bottom: str, repeats: int, gpu: bool) -> tuple[float, float]:
    """(forward, backward) median seconds of a net already fed, top diff set to ones."""
    fwd = median_time(lambda: (net.forward(), sync_blob(gpu, net.blobs[top])), repeats)
    net.blobs[top].diff[...] = 1
    bwd = median_time(lambda: (net.backward(), sync_blob(gpu, net.blobs[bottom])), repeats)
    return fwd, bwd


def time_single_level(shape: tuple[int, ...], x: np.ndarray, rois: np.ndarray, scale: float,
                      pooled: int, params: dict[str, Any], repeats: int,
                      gpu: bool) -> tuple[float, float]:
    """(forward, backward) seconds of ROIAlign on one map for rois (0, 0 for no RoIs)."""
    if len(rois) == 0:
        return 0.0, 0.0
    runner = RoILayerRunner("ROIAlign", shape, len(rois), pooled_h=pooled, pooled_w=pooled,
                            spatial_scale=scale, **params)
    runner.forward(x, rois)
    return time_net(runner.net, "out", "data", repeats, gpu)


def pyramid_rows(key: str, threads: int, repeats: int, gpu: bool) -> list[dict[str, Any]]:
    """PyramidROIAlign and its two single-level baselines on one pyramid input."""
    shapes, scales, pooled, n, (img_h, img_w) = PYRAMID_INPUTS[key]
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    rois = proposal_like_rois(rng, n, 1, img_h, img_w)
    levels = fpn_levels(rois, len(shapes))
    counts = np.bincount(levels, minlength=len(shapes)).tolist()
    rows = []
    for setting, params in PYRAMID_SETTINGS.items():
        runner = PyramidRunner(shapes, n, {"spatial_scale": scales}, pooled_h=pooled,
                               pooled_w=pooled, **params)
        runner.forward(maps, rois)
        times = {PYRAMID: time_net(runner.net, "out", "p0", repeats, gpu)}
        per_level = [time_single_level(shapes[lv], maps[lv], rois[levels == lv], scales[lv],
                                       pooled, params, repeats, gpu)
                     for lv in range(len(shapes))]
        times[PER_LEVEL] = (sum(t[0] for t in per_level), sum(t[1] for t in per_level))
        times[ON_P3] = time_single_level(shapes[1], maps[1], rois, scales[1], pooled, params,
                                         repeats, gpu)
        for method, (fwd, bwd) in times.items():
            rows.append({"input": key, "method": f"{method} {setting}", "threads": threads,
                         "device": "GPU" if gpu else "CPU", "forward_ms": 1e3 * fwd,
                         "backward_ms": 1e3 * bwd, "pyramid_setting": setting,
                         "pyramid_role": method, "rois_per_level": counts})
            log.info("%s | %s %s | %d thread(s): forward %.2f ms, backward %.2f ms", key,
                     method, setting, threads, 1e3 * fwd, 1e3 * bwd)
        add_pyramid_ratios(rows[-len(times):])
    return rows


def add_pyramid_ratios(rows: list[dict[str, Any]]) -> None:
    """Adds to the PyramidROIAlign row of one setting its time over each baseline's."""
    by_role = {r["pyramid_role"]: r for r in rows}
    pyr = by_role[PYRAMID]
    for role, name in ((PER_LEVEL, "per_level"), (ON_P3, "p3")):
        for pass_ in ("forward", "backward"):
            base = by_role[role][f"{pass_}_ms"]
            pyr[f"{pass_}_over_{name}"] = pyr[f"{pass_}_ms"] / base if base else float("nan")


def ipex_venv() -> Path:
    """The IPEX benchmark virtualenv's folder: $IPEX_VENV, else build/ipex-venv."""
    return Path(os.environ.get("IPEX_VENV") or ROOT / "build" / "ipex-venv")


def ipex_python() -> Path | None:
    """The IPEX virtualenv's python, None where there is none."""
    python = ipex_venv() / "bin" / "python"
    return python if python.is_file() and os.access(python, os.X_OK) else None


def ipex_skip_note() -> str:
    """The one note logged when the IPEX columns are left out for want of the virtualenv."""
    return (f"IPEX columns skipped: no IPEX virtualenv at {ipex_venv()} (create it with "
            f"`{IPEX_HOWTO}`, or point IPEX_VENV at one; --no-ipex skips them silently)")


def write_ipex_case(folder: str, key: str, name: str, x: np.ndarray, rois: np.ndarray,
                    scale: float, pooled: int, ref: np.ndarray, ref_grad: np.ndarray) -> str:
    """Saves one ipex_anchor case (top diff ones, as our backward timing uses); its file stem."""
    sampling_ratio, aligned = IPEX_ROWS[name]
    stem = f"{key}__{name.replace(' ', '_')}"
    np.savez(Path(folder) / f"{stem}.npz", x=x, rois=rois, spatial_scale=scale,
             pooled_h=pooled, pooled_w=pooled, sampling_ratio=sampling_ratio, aligned=aligned,
             ref=ref, ref_grad=ref_grad)
    return stem


def run_ipex_anchor(python: Path, folder: str, threads: int,
                    repeats: int) -> dict[str, Any] | None:
    """ipex_anchor.py over every case in folder at `threads` threads, in its own process (the
    IPEX virtualenv's python, OMP_NUM_THREADS set, no PYTHONPATH); None if it failed."""
    cases = sorted(str(p) for p in Path(folder).glob("*.npz"))
    if not cases:
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("PYTHONPATH", None)
    env.pop("OMP_WAIT_POLICY", None)
    cmd = [str(python), str(IPEX_ANCHOR), "--threads", str(threads), "--repeats", str(repeats),
           *cases]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        log.error("ipex_anchor failed for %d thread(s) (no IPEX columns for it):\n%s", threads,
                  proc.stderr[-3000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_ipex_columns(rows: list[dict[str, Any]], result: dict[str, Any] | None,
                     threads: int) -> None:
    """Moves ipex_anchor's times and differences into the CPU rows of `threads` it timed (and
    drops their case names). A forward difference over IPEX_TOLERANCE is logged."""
    for row in rows:
        if row["threads"] != threads or row["device"] != "CPU" or "ipex_case" not in row:
            continue
        rec = (result or {}).get("cases", {}).get(row.pop("ipex_case"))
        if rec is None:
            continue
        row.update({new: rec[old] for old, new in IPEX_KEYS.items() if old in rec})
        diff = row.get("ipex_max_abs_diff_forward", 0.0)
        log.info("%s | IPEX %s | %d thread(s): CL forward %.2f ms, backward %.2f ms; NCHW+conv "
                 "forward %.2f ms, backward %.2f ms; max |IPEX - onnxruntime| %.2g, "
                 "max |IPEX grad - ours| %.2g", row["input"], row["method"], threads,
                 row["ipex_cl_forward_ms"], row["ipex_cl_backward_ms"],
                 row["ipex_nchw_conv_forward_ms"], row["ipex_nchw_conv_backward_ms"], diff,
                 row.get("ipex_max_abs_diff_backward", float("nan")))
        if not diff <= IPEX_TOLERANCE:
            log.warning("%s | %s: IPEX's forward differs from onnxruntime's by %.3g (> %g)",
                        row["input"], row["method"], diff, IPEX_TOLERANCE)


def run_one_thread_count(threads: int, repeats: int, inputs: list[str], gpu: bool,
                         ipex_dir: str | None = None):
    import caffe

    if gpu:
        caffe.set_mode_gpu()
        caffe.set_device(0)
    else:
        caffe.set_mode_cpu()
    rows = []

    def sync(blob) -> None:
        sync_blob(gpu, blob)

    for key in inputs:
        if key in PYRAMID_INPUTS:
            rows += pyramid_rows(key, threads, repeats, gpu)
            continue
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
                if ipex_dir and name in IPEX_ROWS:
                    row["ipex_case"] = write_ipex_case(
                        ipex_dir, key, name, x, rois, scale, pooled, op(x, rois),
                        runner.net.blobs["data"].diff.copy())
            rows.append(row)
            log.info("%s | %s | %d thread(s): forward %.2f ms, backward %.2f ms%s", key, name,
                     threads, row["forward_ms"], row["backward_ms"],
                     f", onnxruntime {row['onnxruntime_forward_ms']:.2f} ms"
                     if "onnxruntime_forward_ms" in row else "")
    return rows


def ipex_cell(r: dict[str, Any], way: str, width: int) -> str:
    """'fwd/bwd' ms of one IPEX way ("cl" or "nchw_conv") for the table, blank without it."""
    fwd, bwd = r.get(f"ipex_{way}_forward_ms"), r.get(f"ipex_{way}_backward_ms")
    return f"{f'{fwd:.2f}/{bwd:.2f}':>{width}}" if fwd is not None else " " * width


def table(rows: list[dict[str, Any]]) -> str:
    """The single-level table; the IPEX columns only where some row has IPEX times."""
    pool = {(r["input"], r["threads"], r["device"]): r for r in rows
            if r["method"] == "ROIPooling"}
    rows = sorted(rows, key=lambda r: (r["device"], r["threads"]))
    with_ipex = any("ipex_cl_forward_ms" in r for r in rows)
    head = (f"{'input':<20} {'method':<28} {'dev':<4} {'thr':>3} {'fwd ms':>9} {'bwd ms':>9} "
            f"{'bwd/fwd':>7} {'ORT ms':>9} {'ORT/ours':>8} {'/ROIPool':>8}")
    if with_ipex:
        head += f" {'IPEX CL fwd/bwd':>17} {'IPEX NCHW+conv fwd/bwd':>22}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ort_ms = r.get("onnxruntime_forward_ms")
        p = pool.get((r["input"], r["threads"], r["device"]))
        ort_cols = f"{ort_ms:9.2f} {ort_ms / r['forward_ms']:8.2f}" if ort_ms else " " * 18
        vs_pool = r["forward_ms"] / p["forward_ms"] if p else float("nan")
        lines.append(
            f"{r['input']:<20} {r['method']:<28} {r['device']:<4} {r['threads']:>3} "
            f"{r['forward_ms']:>9.2f} {r['backward_ms']:>9.2f} "
            f"{r['backward_ms'] / r['forward_ms']:>7.2f} {ort_cols} {vs_pool:>8.2f}"
            + (f" {ipex_cell(r, 'cl', 17)} {ipex_cell(r, 'nchw_conv', 22)}".rstrip()
               if with_ipex else ""))
    return "\n".join(lines)


def pyramid_table(rows: list[dict[str, Any]]) -> str:
    """PyramidROIAlign over its baselines: own level (sum of per-level ROIAlign) and P3."""
    rows = sorted((r for r in rows if r.get("pyramid_role") == PYRAMID),
                  key=lambda r: (r["device"], r["threads"]))
    head = (f"{'input':<16} {'setting':<24} {'dev':<4} {'thr':>3} {'fwd ms':>9} {'bwd ms':>9} "
            f"{'fwd/own':>8} {'bwd/own':>8} {'fwd/P3':>8} {'bwd/P3':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['input']:<16} {r['pyramid_setting']:<24} {r['device']:<4} {r['threads']:>3} "
            f"{r['forward_ms']:>9.2f} {r['backward_ms']:>9.2f} "
            f"{r['forward_over_per_level']:>8.2f} {r['backward_over_per_level']:>8.2f} "
            f"{r['forward_over_p3']:>8.2f} {r['backward_over_p3']:>8.2f}")
    return "\n".join(lines)


def input_meta(key: str) -> dict[str, Any]:
    if key in PYRAMID_INPUTS:
        shapes, scales, pooled, n, image = PYRAMID_INPUTS[key]
        return {"shapes": shapes, "spatial_scales": scales, "pooled": pooled, "rois": n,
                "image": image, "level_rule": "FLOOR", "settings": PYRAMID_SETTINGS}
    shape, scale, pooled, n = INPUTS[key]
    return {"shape": shape, "spatial_scale": scale, "pooled": pooled, "rois": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_roi", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+",
                    default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inputs", nargs="+", default=[*INPUTS, *PYRAMID_INPUTS],
                    choices=[*INPUTS, *PYRAMID_INPUTS])
    ap.add_argument("--gpu", action="store_true", help="also time GPU mode (CUDA builds)")
    ap.add_argument("--json", default="output/bench/roi_speed.json")
    ap.add_argument("--no-ipex", action="store_true",
                    help="leave out the optional IPEX columns even where its virtualenv exists")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ipex-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if args.worker is not None:
        rows = run_one_thread_count(args.worker, args.repeats, args.inputs, args.gpu,
                                    args.ipex_dir)
        print("ROWS" + json.dumps(rows))
        return 0
    rows: list[dict[str, Any]] = []
    runs = [(t, False) for t in args.threads] + ([(1, True)] if args.gpu else [])
    if args.gpu:
        try:
            from rcnn.bench.torchvision_gpu import time_torchvision

            rows += [dict(r, threads=1) for r in time_torchvision(
                args.repeats, {k: INPUTS[k] for k in args.inputs if k in INPUTS})]
        except ImportError:
            log.info("torchvision is not installed: no torchvision rows")
    ipex_meta: dict[str, Any]
    python = None if args.no_ipex else ipex_python()
    if args.no_ipex:
        ipex_meta = {"skipped": "--no-ipex"}
    elif python is None:
        ipex_meta = {"skipped": ipex_skip_note()}
        log.info("%s", ipex_meta["skipped"])
    else:
        ipex_meta = {"python": str(python)}
    for threads, gpu in runs:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
        env.pop("OMP_WAIT_POLICY", None)  # the OpenMP default, as docs/BENCHMARKS.md measured
        with tempfile.TemporaryDirectory(prefix="bench_roi_ipex_") as ipex_dir:
            cmd = [sys.executable, "-m", "rcnn.bench.roi_speed", "--worker", str(threads),
                   "--repeats", str(args.repeats), "--inputs", *args.inputs,
                   *(["--gpu"] if gpu else []),
                   *(["--ipex-dir", ipex_dir] if python and not gpu else [])]
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if proc.returncode:
                log.error("worker for %d thread(s) failed", threads)
                return proc.returncode
            new = json.loads(next(x for x in proc.stdout.splitlines()
                                  if x.startswith("ROWS"))[4:])
            if python and not gpu:
                result = run_ipex_anchor(python, ipex_dir, threads, args.repeats)
                add_ipex_columns(new, result, threads)
                if result:
                    ipex_meta.update(torch=result["torch"], ipex=result["ipex"],
                                     api=result["api"])
        rows += new
    print(table(rows))
    if any(r.get("pyramid_role") for r in rows):
        print()
        print(pyramid_table(rows))
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "repeats": args.repeats,
            "inputs": {k: input_meta(k) for k in args.inputs}, "ipex": ipex_meta}
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
