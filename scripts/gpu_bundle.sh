#!/usr/bin/env bash
# Build what the GPU checks need, here (no GPU needed), into one archive that travels to a GPU
# machine which has the NVIDIA driver and CUDA runtime but none of Caffe's dependencies:
#   gpu_bundle/bundle.tar.xz  with
#     cuda/        libcaffe, the caffe tool and the RoI layers' test binaries (CUDA build)
#     cuda-roicpu/ the same built with ROI_LAYERS_CPU_ONLY=1 (RoI layers on their CPU code)
#     lib/         the shared libraries they load (glog, protobuf, boost, OpenBLAS, ...), except
#                  glibc and the CUDA libraries, which the GPU machine provides
#     nets/        single-RoI-layer nets for `caffe time`, fed by HDF5Data layers with the
#                  inputs of `make bench-roi` (rcnn.bench.roi_speed.make_inputs: proposal-like
#                  RoIs; feature values rounded to 1/32 so that the archive stays small)
# Then, on the GPU machine: bash scripts/gpu_check.sh (see docs/GPU.md).
# CUDA_ARCH defaults to sm_90 (H100 / H200) to keep the build short and the archive small.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${CUDA_ARCH:-"-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"}
OUT=gpu_bundle
TESTS="test_roi_align_layer test_pyramid_roi_align_layer test_roi_pooling_layer test_smooth_l1_loss_layer test_roi_layers_gpu test_roi_kernels_emulated test_dropout_scale_train"
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
# Shared libraries: everything the binaries load but glibc's (every library the glibc package
# ships: a copy from here would shadow the GPU machine's own and its loader) and CUDA's own.
GLIBC_LIBS='ld-linux[^/]*|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libnsl|libutil|libanl|libBrokenLocale|libthread_db|libcrypt|libnss_[a-z0-9_]+|libc_malloc_debug|libmemusage|libpcprofile|libSegFault'
for f in "$OUT"/stage/cuda/bin/* "$OUT"/stage/cuda/lib/*; do
    LD_LIBRARY_PATH=$OUT/stage/cuda/lib ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -vE "/($GLIBC_LIBS|libcaffe)\.so|/libcuda|/libcudart|/libcublas|/libcurand|/libnvidia|/usr/local/cuda" \
    | while read -r lib; do cp -L "$lib" "$OUT/stage/lib/"; done
if ls "$OUT/stage/lib" | grep -qE "^($GLIBC_LIBS)\.so"; then
    echo "[gpu_bundle] ERROR: a glibc library got into lib/" >&2; exit 1
fi
strip --strip-unneeded "$OUT"/stage/*/bin/* "$OUT"/stage/*/lib/*.so* "$OUT"/stage/lib/*.so* 2>/dev/null || true
# Single-layer nets for `caffe time`, on the inputs of the CPU benchmark (`make bench-roi`):
# Input layers cannot hold values (caffe time would time all-zero RoIs), so the features and
# RoIs travel as HDF5 files read by HDF5Data layers (one per top: their batch sizes differ).
# h5write, a few lines of C against the HDF5 library Caffe links anyway, writes them: no h5py.
H5W=$OUT/h5write
cat > "$H5W.c" <<'C'
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
/* h5write OUT.h5 NAME RAW_FLOAT32 DIM... : one float dataset NAME of shape DIM... */
int main(int argc, char** argv) {
  if (argc < 5) return 2;
  int rank = argc - 4;
  hsize_t dims[8], n = 1;
  for (int i = 0; i < rank && i < 8; ++i) n *= (dims[i] = strtoull(argv[4 + i], 0, 10));
  float* v = malloc(n * sizeof(float));
  FILE* f = fopen(argv[3], "rb");
  if (!v || !f || fread(v, sizeof(float), n, f) != n) return 1;
  hid_t h = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (h < 0 || H5LTmake_dataset_float(h, argv[2], rank, dims, v) < 0) return 1;
  return H5Fclose(h) < 0;
}
C
HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/serial
gcc -O2 -I/usr/include/hdf5/serial -o "$H5W" "$H5W.c" -L"$HDF5_DIR" -lhdf5_hl -lhdf5 \
    -Wl,-rpath,"$HDF5_DIR"
.venv/bin/python - "$OUT/stage/nets" "$H5W" <<'PY'
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "python")
from rcnn.bench.roi_speed import INPUTS, OURS, make_inputs  # noqa: E402
from rcnn.roi_harness.nets import _param_text  # noqa: E402

out, h5write = Path(sys.argv[1]), sys.argv[2]


def write(name, top, array):
    raw = out / f"{name}.raw"
    array.astype(np.float32).tofile(raw)
    subprocess.run([h5write, str(out / f"{name}.h5"), top, str(raw),
                    *map(str, array.shape)], check=True)
    raw.unlink()
    (out / f"{name}.txt").write_text(f"{name}.h5\n")  # paths relative to nets/


written = set()
for key, (shape, scale, pooled, n) in INPUTS.items():
    x, rois = make_inputs(shape, scale, n)  # the benchmark's own inputs (seed 0)
    assert np.isfinite(rois).all() and (rois[:, 3] > rois[:, 1]).any()
    data_name = "data_" + "x".join(map(str, shape))  # one file per feature shape
    if data_name not in written:
        write(data_name, "data", np.round(x * 32) / 32)
        written.add(data_name)
    write(f"rois_{key}", "rois", rois)
    for name, (layer, params, _) in OURS.items():
        slug = name.split(" (")[0].replace(" ", "_").lower()
        roi_params = _param_text(dict(pooled_h=pooled, pooled_w=pooled, spatial_scale=scale,
                                      **params))
        (out / f"{key}__{slug}.prototxt").write_text(f"""name: "roi_layer_net"
force_backward: true
layer {{ name: "data" type: "HDF5Data" top: "data"
  hdf5_data_param {{ source: "{data_name}.txt" batch_size: {shape[0]} }} }}
layer {{ name: "rois" type: "HDF5Data" top: "rois"
  hdf5_data_param {{ source: "rois_{key}.txt" batch_size: {n} }} }}
layer {{ name: "roi_layer" type: "{layer}" bottom: "data" bottom: "rois" top: "out"
  roi_pooling_param {{ {roi_params} }} }}
""")
PY
rm -f "$H5W" "$H5W.c"
cp scripts/gpu_check.sh python/rcnn/bench/torchvision_gpu.py "$OUT/stage/"
tar -C "$OUT/stage" -cJf "$OUT/bundle.tar.xz" .
rm -rf "$OUT/stage"
echo "[gpu_bundle] $(du -h "$OUT/bundle.tar.xz" | cut -f1) in $OUT/bundle.tar.xz (limit 64 MiB)"
