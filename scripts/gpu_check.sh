#!/usr/bin/env bash
# Runs on the GPU machine, from the unpacked bundle (scripts/gpu_bundle.sh): the RoI layers'
# C++ tests on the GPU types for both variants, CPU vs GPU agreement, `caffe time` for every
# RoI layer configuration (on the inputs of `make bench-roi`, read from nets/*.h5), and
# torchvision's CUDA roi_align for comparison. Results go to $OUT (or ./gpu_results).
# The bundle's LD_LIBRARY_PATH is set only for the bundle's binaries: the GPU machine's own
# Python (torch) runs with the environment this script was started with.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
R=${OUT:-$PWD/gpu_results}
mkdir -p "$R"
CUDA_LIB=${CUDA_LIB:-/usr/local/cuda/lib64}
ORIG_LD_LIBRARY_PATH_SET=${LD_LIBRARY_PATH+set}
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}
nvidia-smi -L | tee "$R/gpu.txt"
status=0
for variant in cuda cuda-roicpu; do
    export LD_LIBRARY_PATH=$B/$variant/lib:$B/lib:$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    for t in "$B/$variant"/bin/*.testbin; do
        echo "== $variant $(basename "$t")" | tee -a "$R/tests.txt"
        "$t" 2>&1 | tail -n 40 | tee -a "$R/tests.txt"
        [ "${PIPESTATUS[0]}" = 0 ] || status=1
    done
    # The nets' HDF5Data sources name their .h5 files relative to nets/. The roi_layer lines
    # are the benchmark; the Average passes include the HDF5Data layers' copies.
    for net in "$B"/nets/*.prototxt; do
        echo "== $variant $(basename "$net" .prototxt)" >> "$R/caffe_time_$variant.txt"
        (cd "$B/nets" && "$B/$variant/bin/caffe" time -model "$net" -gpu 0 -iterations 20 2>&1) \
            | grep -E "roi_layer\s+(forward|backward)|Average (Forward|Backward) pass|Check failed" \
            >> "$R/caffe_time_$variant.txt"
        [ "${PIPESTATUS[0]}" = 0 ] || status=1
    done
done
# torch's Python with the machine's own libraries, not the bundle's (Debian 12's libstdc++,
# libssl, libz would shadow the machine's).
if [ -n "$ORIG_LD_LIBRARY_PATH_SET" ]; then
    export LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH
else
    unset LD_LIBRARY_PATH
fi
python3 "$B/torchvision_gpu.py" --json "$R/torchvision.json" | tee "$R/torchvision.txt" || status=1
echo "overall: $([ $status = 0 ] && echo PASS || echo FAIL)" | tee -a "$R/tests.txt"
exit $status
