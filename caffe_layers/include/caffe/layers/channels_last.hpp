// Layout changes between Caffe's (N, C, H, W) blobs and a channels-last (N, H, W, C) copy, in
// which the C values of one pixel are contiguous: what the CPU RoI passes read and write so
// that their innermost loops run over channels with contiguous, vectorisable loads and stores.
#ifndef CAFFE_CHANNELS_LAST_HPP_
#define CAFFE_CHANNELS_LAST_HPP_

#include <stdint.h>

// The CPU RoI passes' hot loops are compiled once per instruction set and chosen at run time
// (GCC function multi-versioning on x86-64); elsewhere, or with ROI_NATIVE (Makefile.config:
// -march=native), they are plain functions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ROI_NATIVE)
#define ROI_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ROI_CPU_CLONES
#endif

namespace caffe {
namespace channels_last {

// Below this many elements of work a CPU RoI pass runs on the calling thread: starting and
// joining an OpenMP team costs more than it saves (the gradient checker's thousands of
// passes over tiny blobs, for instance).
const int64_t kParallelWork = 1 << 15;

// out (num, plane, channels) = in (num, channels, plane); plane = H * W. OpenMP, tiled.
template <typename Dtype>
void FromNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

// out (num, channels, plane) = in (num, plane, channels). OpenMP, tiled.
template <typename Dtype>
void ToNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

// x[0, count) = 0, OpenMP.
template <typename Dtype>
void Zero(int64_t count, Dtype* x);

}  // namespace channels_last
}  // namespace caffe

#endif  // CAFFE_CHANNELS_LAST_HPP_
