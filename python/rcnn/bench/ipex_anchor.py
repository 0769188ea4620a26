"""ipex_anchor: Intel Extension for PyTorch's RoIAlign timed on bench-roi's inputs.

    build/ipex-venv/bin/python python/rcnn/bench/ipex_anchor.py --threads 2 case.npz [...]

Run by the IPEX benchmark virtualenv's python (scripts/ipex_venv.sh), not the project's: it
imports only numpy, torch and intel_extension_for_pytorch (never caffe or the rcnn package), and
`make bench-roi` (rcnn.bench.roi_speed) calls it in a subprocess per thread count.

Each case is an .npz with
  x               (N, C, H, W) float32 feature map, NCHW
  rois            (R, 5) float32, Caffe's [batch, x1, y1, x2, y2] (torchvision's Tensor[K, 5])
  spatial_scale, pooled_h, pooled_w, sampling_ratio (0: adaptive), aligned (bool: torchvision's
                  `aligned`; True is our HALF_PIXEL alignment, False our DETECTRON)
  top_diff        optional (R, C, pooled_h, pooled_w) gradient of the output; default ones
  ref             optional forward reference (onnxruntime's RoiAlign): max abs difference reported
  ref_grad        optional d(sum(top_diff * out))/dx reference (our layer's bottom diff)

IPEX's RoIAlign (AVE only; `intel_extension_for_pytorch.nn.modules._roi_align.RoIAlign`, a
module over `torch.ops.torch_ipex.ROIAlign_forward`, with an autograd backward,
`torch_ipex::ROIAlign_backward`) is timed, median of --repeats after --warmup calls, two ways:

  cl         channels_last in and out, no conversions: x already channels_last, the output left
             as IPEX returns it (channels_last); backward: autograd grad wrt x for a top diff in
             the output's layout, the gradient left as returned (channels_last).
  nchw_conv  NCHW in and out, the conversions counted: x NCHW contiguous -> channels_last ->
             RoIAlign -> .contiguous() (NCHW) inside the timed region; backward: autograd through
             the same chain for an NCHW top diff, the gradient made NCHW contiguous.

Forward times run under torch.no_grad(); backward times reuse one forward graph
(retain_graph). Prints one JSON object on stdout: versions, threads and, per case, the four times
in ms and the largest absolute differences from the references.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of fn() in milliseconds over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| (inf when the shapes differ; 0 for empty arrays)."""
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0


def ipex_roi_align(pooled: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                   aligned: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """IPEX's public RoIAlign module (torchvision semantics, AVE) for these settings."""
    import intel_extension_for_pytorch as ipex

    return ipex.nn.modules._roi_align.RoIAlign(pooled, spatial_scale, sampling_ratio, aligned)


def run_case(case: dict[str, np.ndarray], repeats: int,
             warmup: int) -> tuple[dict[str, Any], np.ndarray]:
    """Times one case both ways; returns (the JSON record, the forward output as NCHW numpy)."""
    import torch

    cl = torch.channels_last
    roi_align = ipex_roi_align((int(case["pooled_h"]), int(case["pooled_w"])),
                               float(case["spatial_scale"]), int(case["sampling_ratio"]),
                               bool(case["aligned"]))
    x_nchw = torch.from_numpy(np.ascontiguousarray(case["x"], dtype=np.float32))
    rois = torch.from_numpy(np.ascontiguousarray(case["rois"], dtype=np.float32))
    x_cl = x_nchw.contiguous(memory_format=cl)

    def nchw_conv(x: torch.Tensor) -> torch.Tensor:
        return roi_align(x.contiguous(memory_format=cl), rois).contiguous()

    rec: dict[str, Any] = {"rois": int(rois.shape[0]), "shape": list(x_nchw.shape)}
    with torch.no_grad():
        out_cl = roi_align(x_cl, rois)
        out_nchw = nchw_conv(x_nchw)
        rec["cl_output_channels_last"] = bool(out_cl.is_contiguous(memory_format=cl))
        rec["cl_forward_ms"] = median_ms(lambda: roi_align(x_cl, rois), repeats, warmup)
        rec["nchw_conv_forward_ms"] = median_ms(lambda: nchw_conv(x_nchw), repeats, warmup)
    top_np = case.get("top_diff")
    top = (torch.ones(out_nchw.shape) if top_np is None
           else torch.from_numpy(np.ascontiguousarray(top_np, dtype=np.float32)))

    xg_cl = x_cl.detach().requires_grad_()
    y_cl = roi_align(xg_cl, rois)
    top_cl = torch.empty_like(y_cl).copy_(top)          # the output's own layout
    grad_cl = torch.autograd.grad(y_cl, xg_cl, top_cl, retain_graph=True)[0]
    rec["cl_grad_channels_last"] = bool(grad_cl.is_contiguous(memory_format=cl))
    rec["cl_backward_ms"] = median_ms(
        lambda: torch.autograd.grad(y_cl, xg_cl, top_cl, retain_graph=True), repeats, warmup)

    xg = x_nchw.detach().clone().requires_grad_()
    y = nchw_conv(xg)

    def nchw_backward() -> torch.Tensor:
        return torch.autograd.grad(y, xg, top, retain_graph=True)[0].contiguous()

    grad_nchw = nchw_backward()
    rec["nchw_conv_backward_ms"] = median_ms(nchw_backward, repeats, warmup)

    out = out_cl.contiguous().numpy()
    rec["max_abs_diff_cl_vs_nchw_conv"] = max(
        max_abs_diff(out, out_nchw.numpy()),
        max_abs_diff(grad_cl.contiguous().numpy(), grad_nchw.numpy()))
    if case.get("ref") is not None:
        rec["max_abs_diff_forward"] = max_abs_diff(out, case["ref"])
        rec["ref_max_abs"] = float(np.max(np.abs(case["ref"]))) if case["ref"].size else 0.0
    if case.get("ref_grad") is not None:
        rec["max_abs_diff_backward"] = max_abs_diff(grad_nchw.numpy(), case["ref_grad"])
        rec["ref_grad_max_abs"] = (float(np.max(np.abs(case["ref_grad"])))
                                   if case["ref_grad"].size else 0.0)
    return rec, out


def main(argv: list[str] | None = None) -> int:
    """Times every case given for one thread count and prints the JSON record."""
    ap = argparse.ArgumentParser(prog="ipex_anchor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", help=".npz inputs (see above)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--save", help="folder: write each case's forward output as <case>.out.npy")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import intel_extension_for_pytorch as ipex
    import torch

    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"torch": torch.__version__, "ipex": ipex.__version__,
                              "threads": torch.get_num_threads(),
                              "api": "intel_extension_for_pytorch.nn.modules._roi_align.RoIAlign"
                                     " (torch.ops.torch_ipex.ROIAlign_forward / _backward)",
                              "cases": {}}
    for path in map(Path, args.cases):
        with np.load(path) as data:
            case = {k: data[k] for k in data.files}
        rec, out = run_case(case, args.repeats, args.warmup)
        result["cases"][path.stem] = rec
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            np.save(Path(args.save) / f"{path.stem}.out.npy", out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
