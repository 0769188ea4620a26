#!/usr/bin/env bash
# Build what the GPU checks need, here (no GPU needed), into one archive that travels to a GPU
# machine which has the NVIDIA driver and CUDA runtime but none of Caffe's dependencies:
#   gpu_bundle/bundle.tar.xz  with
#     cuda/        libcaffe, the caffe tool and the RoI layers' test binaries (CUDA build)
#     cuda-roicpu/ the same built with ROI_LAYERS_CPU_ONLY=1 (RoI layers on their CPU code)
#     lib/         the shared libraries they load (glog, protobuf, boost, OpenBLAS, ...), except
#                  glibc and the CUDA libraries, which the GPU machine provides
#     nets/        single-RoI-layer nets for `caffe time`
# Then, on the GPU machine: bash scripts/gpu_check.sh (see docs/GPU.md).
# CUDA_ARCH defaults to sm_90 (H100 / H200) to keep the build short and the archive small.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${CUDA_ARCH:-"-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"}
OUT=gpu_bundle
TESTS="test_roi_align_layer test_roi_pooling_layer test_smooth_l1_loss_layer test_roi_layers_gpu test_dropout_scale_train"
rm -rf "$OUT/stage"; mkdir -p "$OUT/stage/lib" "$OUT/stage/nets"
for variant in cuda cuda-roicpu; do
    flag=0; [ "$variant" = cuda-roicpu ] && flag=1
    echo "[gpu_bundle] building Caffe ($variant, $ARCH)"
    make CPU_ONLY=0 ROI_LAYERS_CPU_ONLY=$flag CUDA_ARCH="$ARCH" caffe
    bins=""
    for t in $TESTS; do bins="$bins .build_release/test/$t.testbin"; done
    make -C "build/$variant" -j"$(nproc)" CONFIG_FILE="$PWD/Makefile.config" VENV="$PWD/.venv" \
        CPU_ONLY=0 ROI_LAYERS_CPU_ONLY=$flag CUDA_ARCH="$ARCH" $bins
    d=$OUT/stage/$variant; mkdir -p "$d/bin" "$d/lib"
    cp -L "build/$variant/.build_release/lib/libcaffe.so.1.0.0" "$d/lib/"
    cp -L "build/$variant/.build_release/tools/caffe.bin" "$d/bin/caffe"
    for t in $TESTS; do cp "build/$variant/.build_release/test/$t.testbin" "$d/bin/"; done
done
# Shared libraries: everything the binaries load but glibc's and CUDA's own.
for f in "$OUT"/stage/cuda/bin/* "$OUT"/stage/cuda/lib/*; do
    LD_LIBRARY_PATH=$OUT/stage/cuda/lib ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libcaffe)\.so|/libcuda|/libcudart|/libcublas|/libcurand|/libnvidia|/usr/local/cuda' \
    | while read -r lib; do cp -L "$lib" "$OUT/stage/lib/"; done
strip --strip-unneeded "$OUT"/stage/*/bin/* "$OUT"/stage/*/lib/*.so* "$OUT"/stage/lib/*.so* 2>/dev/null || true
# Single-layer nets for `caffe time` (same inputs as the CPU benchmark).
.venv/bin/python - "$OUT/stage/nets" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "python")
from rcnn.bench.roi_speed import INPUTS, OURS
from rcnn.roi_harness.nets import roi_layer_prototxt
out = Path(sys.argv[1])
for key, (shape, scale, pooled, n) in INPUTS.items():
    for name, (layer, params, _) in OURS.items():
        slug = name.split(" (")[0].replace(" ", "_").lower()
        text = roi_layer_prototxt(layer, shape, n, dict(pooled_h=pooled, pooled_w=pooled,
                                                        spatial_scale=scale, **params))
        (out / f"{key}__{slug}.prototxt").write_text(text)
PY
cp scripts/gpu_check.sh python/rcnn/bench/torchvision_gpu.py "$OUT/stage/"
tar -C "$OUT/stage" -cJf "$OUT/bundle.tar.xz" .
rm -rf "$OUT/stage"
echo "[gpu_bundle] $(du -h "$OUT/bundle.tar.xz" | cut -f1) in $OUT/bundle.tar.xz (limit 64 MiB)"
