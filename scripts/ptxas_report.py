#!/usr/bin/env python3
"""Summarise `nvcc -Xptxas -v` output: registers, stack and spills of each kernel per arch.

Exits 1 when a kernel could not launch --threads threads per block (registers x threads over
the 64K-register file of sm_75..sm_90), or spills / uses a stack frame (local memory).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REGISTER_FILE = 65536  # 32-bit registers per block, sm_75 to sm_90

ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(sm_\d+)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGS = re.compile(r"Used (\d+) registers")


def demangle(names: list[str]) -> dict[str, str]:
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}
    return dict(zip(names, out, strict=False))


def short(name: str) -> str:
    """'void caffe::(anonymous namespace)::ROIAlignForward<2, float>(int, ...)' -> kernel<...>."""
    name = name.replace("(anonymous namespace)::", "").replace("caffe::", "")
    return name.split("(", 1)[0].replace("void ", "")


def parse(paths: list[Path]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        current: dict | None = None
        for line in path.read_text().splitlines():
            if m := ENTRY.search(line):
                current = {"file": path.name.replace(".o.warnings.txt", ".cu"),
                           "kernel": m.group(1), "arch": m.group(2), "registers": 0,
                           "stack": 0, "spill_stores": 0, "spill_loads": 0}
                rows.append(current)
            elif current is not None and (m := FRAME.search(line)):
                stack, stores, loads = map(int, m.groups())
                current.update(stack=stack, spill_stores=stores, spill_loads=loads)
            elif current is not None and (m := REGS.search(line)):
                current["registers"] = int(m.group(1))
    names = demangle(sorted({r["kernel"] for r in rows}))
    for r in rows:
        r["kernel"] = short(names[r["kernel"]])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("warn_files", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=512, help="CAFFE_CUDA_NUM_THREADS")
    ap.add_argument("--json", type=Path, help="write the table here as JSON")
    args = ap.parse_args()
    rows = parse(args.warn_files)
    if not rows:
        print("[ptxas] no kernels found: was nvcc run with -Xptxas -v?", file=sys.stderr)
        return 1
    limit = REGISTER_FILE // args.threads
    bad = []
    print(f"{'kernel':<48} {'arch':<7} {'regs':>5} {'stack':>6} {'spill':>6}  "
          f"launch@{args.threads}")
    for r in sorted(rows, key=lambda r: (r["kernel"], r["arch"])):
        ok = r["registers"] <= limit and r["stack"] == 0 and r["spill_stores"] == 0
        r["launches_at_num_threads"] = ok
        if not ok:
            bad.append(r)
        print(f"{r['kernel']:<48} {r['arch']:<7} {r['registers']:>5} {r['stack']:>6} "
              f"{r['spill_stores']:>6}  {'ok' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps({"threads_per_block": args.threads,
                                         "register_limit": limit, "kernels": rows}, indent=1))
        print(f"[ptxas] wrote {args.json}")
    if bad:
        print(f"[ptxas] {len(bad)} kernel/arch pairs exceed {limit} registers per thread or use "
              "local memory", file=sys.stderr)
        return 1
    print(f"[ptxas] all {len(rows)} kernel/arch pairs fit {args.threads} threads per block "
          f"(<= {limit} registers, no stack, no spills)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
