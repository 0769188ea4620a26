#!/usr/bin/env bash
# Create the separate benchmark virtualenv with Intel Extension for PyTorch (IPEX) 2.8 and its
# matching torch 2.8, for the optional IPEX anchor columns of `make bench-roi`
# (python/rcnn/bench/ipex_anchor.py). Not a runtime dependency of the project: nothing else
# imports torch or IPEX, and the project's own .venv is left alone.
#
#   bash scripts/ipex_venv.sh            # -> build/ipex-venv (git-ignored; kept by make clean)
#   IPEX_VENV=/some/path bash scripts/ipex_venv.sh
#
# IPEX_VENV   where to create it (default: <repo>/build/ipex-venv); bench-roi reads the same
#             variable to find it.
# PYTHON      the interpreter to base it on (default: /usr/bin/python3 where it exists, the one
#             the project's .venv uses; IPEX 2.8 publishes wheels for CPython 3.9-3.13).
#
# PyPI has only the CUDA build of torch for Linux x86_64 (the CPU-only wheels live on
# download.pytorch.org), and its libtorch_cuda.so links against the CUDA runtime libraries, so
# `import torch` fails without the nvidia-*-cu12 wheels even on a machine without a GPU. They are
# installed (about 3 GB); triton, which torch only needs to compile GPU kernels, is not. Every
# other requirement comes from torch's own metadata, so the pins follow the torch release.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${IPEX_VENV:-$ROOT/build/ipex-venv}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
TORCH_SPEC=${TORCH_SPEC:-torch==2.8.*}
IPEX_SPEC=${IPEX_SPEC:-intel-extension-for-pytorch==2.8.*}

log() { echo "[ipex_venv] $*"; }

check() {
    "$DEST/bin/python" - <<'EOF'
import intel_extension_for_pytorch as ipex
import torch

x = torch.randn(1, 4, 8, 8).to(memory_format=torch.channels_last)
rois = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]])
y = ipex.nn.modules._roi_align.RoIAlign((2, 2), 1.0, 2, True)(x, rois)
print(f"[ipex_venv] ok: torch {torch.__version__}, IPEX {ipex.__version__}, "
      f"RoIAlign -> {tuple(y.shape)}")
EOF
}

if [ -x "$DEST/bin/python" ] && check 2>/dev/null; then
    log "$DEST already works; nothing to do (remove it to rebuild)"
    exit 0
fi

start=$(date +%s)
log "creating $DEST from $($PYTHON -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m venv --clear "$DEST"
PIP=("$DEST/bin/python" -m pip --disable-pip-version-check --no-input)
"${PIP[@]}" install -q --upgrade pip

# torch without its dependencies first (packaging to read them), then those dependencies read
# from its metadata, less triton and the optional extras.
"${PIP[@]}" install -q --no-deps "$TORCH_SPEC" packaging
mapfile -t REQS < <("$DEST/bin/python" - <<'EOF'
from importlib.metadata import requires

from packaging.requirements import Requirement

for line in requires("torch") or []:
    req = Requirement(line)
    if req.name == "triton":
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    print(req)
EOF
)
log "torch's requirements (less triton): ${REQS[*]}"
log "pip may warn that torch requires triton, which is left out on purpose"
"${PIP[@]}" install -q "${REQS[@]}" "$IPEX_SPEC" numpy

check
log "done in $(( $(date +%s) - start )) s; size $(du -sh "$DEST" | cut -f1)"
log "bench-roi finds it at $DEST (or wherever IPEX_VENV points)"
