#!/usr/bin/env bash
# Compile every .cu under caffe_layers/ with nvcc, exactly as a CUDA build of Caffe would
# (Caffe's own rules and flags, CPU_ONLY=0), whether or not a GPU or a CUDA build is at hand,
# and report each kernel's resource usage per architecture from `nvcc -Xptxas -v`. The Caffe
# .cu files that proto/*.patch change are compiled too (not reported).
# Fails when a kernel could not launch CAFFE_CUDA_NUM_THREADS threads per block (registers x
# threads over the 64K register file) or uses a per-thread stack frame / local memory.
# Usage: cuda_check.sh TREE SRC_TREE CUDA_DIR "CUDA_ARCH flags" VENV
set -euo pipefail
TREE=$1; SRC=$2; CUDA_DIR=$3; ARCH=$4; VENV=$5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$CUDA_DIR/bin/nvcc" ] || { echo "[cuda_check] ERROR: no nvcc at $CUDA_DIR/bin/nvcc (set CUDA_DIR)" >&2; exit 1; }
bash "$ROOT/scripts/prepare_tree.sh" "$SRC" "$TREE"
MK=(make -C "$TREE" -s CONFIG_FILE="$ROOT/Makefile.config" CPU_ONLY=0 VENV="$VENV"
    CUDA_DIR="$CUDA_DIR" CUDA_ARCH="$ARCH" EXTRA_NVCCFLAGS=-Xptxas=-v)
"${MK[@]}" proto
objs=()
while IFS= read -r cu; do
    rel=${cu#"$ROOT/caffe_layers/"}
    objs+=(".build_release/cuda/${rel%.cu}.o")
done < <(find "$ROOT/caffe_layers" -name '*.cu' | sort)
[ ${#objs[@]} -gt 0 ] || { echo "[cuda_check] no .cu files under caffe_layers/"; exit 0; }
(cd "$TREE" && rm -f "${objs[@]}")
echo "[cuda_check] nvcc: ${#objs[@]} file(s), CUDA_ARCH: $ARCH"
"${MK[@]}" -j"$(nproc)" "${objs[@]}"
# The Caffe .cu files that proto/*.patch change (e.g. 0008's zero-size guards) are compiled as
# well, so the patched GPU code is proven to compile: for the first architecture of CUDA_ARCH
# only (a compile check, not a register report; about 1/5 of the time of all of them).
caffe_objs=()
for rel in $(grep -h '^+++ b/.*\.cu' "$ROOT"/proto/*.patch | sed -e 's#^+++ b/##' -e 's#[[:space:]].*##' | sort -u); do
    caffe_objs+=(".build_release/cuda/${rel%.cu}.o")
done
if [ ${#caffe_objs[@]} -gt 0 ]; then
    first_arch=$(grep -o -- '-gencode[= ][^ ]*' <<< "$ARCH" | head -1 || true)
    first_arch=${first_arch:-$ARCH}
    echo "[cuda_check] nvcc: ${#caffe_objs[@]} patched Caffe file(s), CUDA_ARCH: $first_arch"
    (cd "$TREE" && rm -f "${caffe_objs[@]}")
    "${MK[@]}" -j"$(nproc)" CUDA_ARCH="$first_arch" "${caffe_objs[@]}"
fi
warns=()
for o in "${objs[@]}"; do warns+=("$TREE/$o.warnings.txt"); done
THREADS=$(grep -ho 'CAFFE_CUDA_NUM_THREADS = [0-9]*' "$TREE/include/caffe/util/device_alternate.hpp" | grep -o '[0-9]*$')
"$VENV/bin/python" "$ROOT/scripts/ptxas_report.py" --threads "$THREADS" \
    --json "$TREE/registers.json" "${warns[@]}"
