#include <stdint.h>

#include <algorithm>

#include "caffe/layers/channels_last.hpp"

namespace caffe {
namespace channels_last {

namespace {
// Tiles of kTile channels x kTile pixels: both sides' reads and writes stay within a few cache
// lines per row of the tile.
const int kTile = 32;
}  // namespace

template <typename Dtype>
void FromNchw(const Dtype* in, int num, int channels, int plane, Dtype* out) {
  const int tiles = (plane + kTile - 1) / kTile;
  const bool parallel = static_cast<int64_t>(num) * channels * plane > kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (int t = 0; t < num * tiles; ++t) {
    const int n = t / tiles, p0 = (t % tiles) * kTile, p1 = std::min(p0 + kTile, plane);
    const Dtype* src = in + static_cast<int64_t>(n) * channels * plane;
    Dtype* dst = out + static_cast<int64_t>(n) * plane * channels;
    for (int c0 = 0; c0 < channels; c0 += kTile) {
      const int c1 = std::min(c0 + kTile, channels);
      for (int p = p0; p < p1; ++p) {
        for (int c = c0; c < c1; ++c) dst[static_cast<int64_t>(p) * channels + c] =
            src[static_cast<int64_t>(c) * plane + p];
      }
    }
  }
}

template <typename Dtype>
void ToNchw(const Dtype* in, int num, int channels, int plane, Dtype* out) {
  const int tiles = (plane + kTile - 1) / kTile;
  const bool parallel = static_cast<int64_t>(num) * channels * plane > kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (int t = 0; t < num * tiles; ++t) {
    const int n = t / tiles, p0 = (t % tiles) * kTile, p1 = std::min(p0 + kTile, plane);
    const Dtype* src = in + static_cast<int64_t>(n) * plane * channels;
    Dtype* dst = out + static_cast<int64_t>(n) * channels * plane;
    for (int c0 = 0; c0 < channels; c0 += kTile) {
      const int c1 = std::min(c0 + kTile, channels);
      for (int c = c0; c < c1; ++c) {
        for (int p = p0; p < p1; ++p) dst[static_cast<int64_t>(c) * plane + p] =
            src[static_cast<int64_t>(p) * channels + c];
      }
    }
  }
}

template void FromNchw<float>(const float*, int, int, int, float*);
template void FromNchw<double>(const double*, int, int, int, double*);
template void FromNchw<int>(const int*, int, int, int, int*);
template void ToNchw<float>(const float*, int, int, int, float*);
template void ToNchw<double>(const double*, int, int, int, double*);

template <typename Dtype>
void Zero(int64_t count, Dtype* x) {
#pragma omp parallel for schedule(static) if (count > kParallelWork)
  for (int64_t i = 0; i < count; ++i) x[i] = 0;
}

template void Zero<float>(int64_t, float*);
template void Zero<double>(int64_t, double*);

}  // namespace channels_last
}  // namespace caffe
