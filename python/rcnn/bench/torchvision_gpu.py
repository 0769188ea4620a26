"""torchvision's CUDA roi_align / roi_pool timings on the benchmark inputs (for the GPU
machine, which has torch and torchvision; needs nothing else of this project).

    python3 torchvision_gpu.py [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial

INPUTS = {  # name: (shape, spatial_scale, pooled, rois); mirrors rcnn.bench.roi_speed
    "vgg16_conv5_r128": ((1, 512, 38, 50), 1 / 16, 7, 128),
    "vgg16_conv5_r300": ((1, 512, 38, 50), 1 / 16, 7, 300),
    "vgg16_conv5_r2000": ((1, 512, 38, 50), 1 / 16, 7, 2000),
    "fpn_p3_7x7_r512": ((2, 256, 100, 136), 1 / 8, 7, 512),
    "fpn_p3_14x14_r512": ((2, 256, 100, 136), 1 / 8, 14, 512),
}


def time_torchvision(repeats: int = 20, inputs: dict | None = None) -> list[dict]:
    """Median CUDA-event times of torchvision's roi_align / roi_pool, forward and backward."""
    import torch
    from torchvision.ops import roi_align, roi_pool

    dev = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for key, (shape, scale, pooled, n) in (inputs or INPUTS).items():
        x = torch.randn(shape, generator=g).to(dev).requires_grad_()
        h, w = shape[2] / scale, shape[3] / scale
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
        wh = torch.exp(torch.rand(n, 2, generator=g) * 3 + 2.77)
        boxes = torch.cat([torch.randint(0, shape[0], (n, 1), generator=g).float(), xy,
                           xy + wh], 1).to(dev)
        for name, fn in (
                ("roi_align aligned sr2", partial(roi_align, x, boxes, pooled, scale, 2,
                                                  aligned=True)),
                ("roi_align adaptive", partial(roi_align, x, boxes, pooled, scale, 0)),
                ("roi_pool", partial(roi_pool, x, boxes, pooled, scale))):
            times = {}
            for phase in ("forward", "backward"):
                start, end = torch.cuda.Event(True), torch.cuda.Event(True)
                out = fn()
                ms = []
                for _ in range(repeats):
                    if phase == "forward":
                        start.record()
                        out = fn()
                        end.record()
                    else:
                        out = fn()
                        start.record()
                        out.sum().backward()
                        end.record()
                    torch.cuda.synchronize()
                    ms.append(start.elapsed_time(end))
                times[phase] = sorted(ms)[len(ms) // 2]
            rows.append({"input": key, "method": f"torchvision {name}", "device": "GPU",
                         "forward_ms": times["forward"], "backward_ms": times["backward"]})
    return rows


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    rows = time_torchvision(args.repeats)
    for r in rows:
        print(f"{r['input']:<20} {r['method']:<36} forward {r['forward_ms']:8.3f} ms  "
              f"backward {r['backward_ms']:8.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
