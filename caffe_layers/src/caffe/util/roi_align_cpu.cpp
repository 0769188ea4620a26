#include <stdint.h>

#include <algorithm>
#include <vector>

#include "caffe/layers/channels_last.hpp"
#include "caffe/layers/roi_align_cpu.hpp"

namespace caffe {
namespace roi_align {

namespace {

inline int MapOf(const int* level, int n) { return level ? level[n] : 0; }

// One sample's K x K taps as rows of channel vectors on a channels-last map, and their
// weights: value(c) is interpolate<K>'s value in channel c, its operations in its order.
template <int K, typename Dtype>
struct SampleRows {
  const Dtype* row[K * K];
  Dtype wy[K], wx[K];

  inline __attribute__((always_inline)) SampleRows(const Dtype* in, int width, int channels,
      const Taps<Dtype>& ty, const Taps<Dtype>& tx) {
    for (int k = 0; k < K; ++k) {
      wy[k] = ty.weight(k);
      wx[k] = tx.weight(k);
      for (int l = 0; l < K; ++l) {
        row[k * K + l] =
            in + (static_cast<int64_t>(ty.index(k)) * width + tx.index(l)) * channels;
      }
    }
  }

  inline __attribute__((always_inline)) Dtype value(int c) const {
    Dtype v = 0;
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      Dtype r = 0;
#pragma GCC unroll 4
      for (int l = 0; l < K; ++l) r += wx[l] * row[k * K + l][c];
      v += wy[k] * r;
    }
    return v;
  }
};

// MAX: sample s with value v replaces the running maximum when it is the first sample or
// larger (the first largest sample wins), as pool_bin does.
template <typename Dtype>
inline __attribute__((always_inline)) void KeepFirstLargest(Dtype v, int s, Dtype* acc,
    int* am) {
  const bool take = s == 0 || v > *acc;
  *acc = take ? v : *acc;
  *am = take ? s : *am;
}

// One bin of one RoI, all channels: acc[c] (and am[c] for MAX) as pool_bin<K> computes them.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void PoolBinChannels(const Dtype* in, int width,
    int channels, const Taps<Dtype>* ty, int grid_h, const Taps<Dtype>* tx, int grid_w,
    bool is_max, Dtype* __restrict__ acc, int* __restrict__ am) {
  std::fill(acc, acc + channels, Dtype(0));
  if (!is_max) {
    for (int iy = 0; iy < grid_h; ++iy) {
      if (!ty[iy].inside) continue;  // an outside sample adds 0
      for (int ix = 0; ix < grid_w; ++ix) {
        if (!tx[ix].inside) continue;
        const SampleRows<K, Dtype> sample(in, width, channels, ty[iy], tx[ix]);
#pragma omp simd
        for (int c = 0; c < channels; ++c) acc[c] += sample.value(c);
      }
    }
    const int count = grid_h * grid_w;
    const Dtype d = count > 1 ? count : 1;
#pragma omp simd
    for (int c = 0; c < channels; ++c) acc[c] /= d;
    return;
  }
  std::fill(am, am + channels, -1);
  for (int iy = 0; iy < grid_h; ++iy) {
    for (int ix = 0; ix < grid_w; ++ix) {
      const int s = iy * grid_w + ix;
      if (!(ty[iy].inside && tx[ix].inside)) {  // value 0
#pragma omp simd
        for (int c = 0; c < channels; ++c) KeepFirstLargest(Dtype(0), s, &acc[c], &am[c]);
        continue;
      }
      const SampleRows<K, Dtype> sample(in, width, channels, ty[iy], tx[ix]);
#pragma omp simd
      for (int c = 0; c < channels; ++c) {
        KeepFirstLargest(sample.value(c), s, &acc[c], &am[c]);
      }
    }
  }
}

// The gradient g[j] of one sample spread over its taps, channels c0 + j (j < width_c) of the
// channels-last gradient `out`: scatter<K>'s operations, in its order, per channel.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void ScatterChannels(Dtype* out, int width,
    int channels, int block, const Taps<Dtype>& ty, const Taps<Dtype>& tx,
    const Dtype* __restrict__ g) {
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const Dtype wy = ty.weight(k);
#pragma GCC unroll 4
    for (int l = 0; l < K; ++l) {
      const Dtype wx = tx.weight(l);
      Dtype* __restrict__ dst =
          out + (static_cast<int64_t>(ty.index(k)) * width + tx.index(l)) * channels;
#pragma omp simd
      for (int j = 0; j < block; ++j) dst[j] += g[j] * wy * wx;
    }
  }
}

// MAX: the gradient g[j] goes to the taps of channel j's own winning sample am[j]. Sample by
// sample, each channel adds its term where the sample is its winner and +0 elsewhere (which
// changes nothing but the sign of a zero), so every channel sees scatter<K>'s operations of
// its one sample, in order.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void ScatterWinners(Dtype* out, int width,
    int channels, int block, const Taps<Dtype>& ty, const Taps<Dtype>& tx, int sample,
    const int* __restrict__ am, const Dtype* __restrict__ g) {
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const Dtype wy = ty.weight(k);
#pragma GCC unroll 4
    for (int l = 0; l < K; ++l) {
      const Dtype wx = tx.weight(l);
      Dtype* __restrict__ dst =
          out + (static_cast<int64_t>(ty.index(k)) * width + tx.index(l)) * channels;
#pragma omp simd
      for (int j = 0; j < block; ++j) dst[j] += am[j] == sample ? g[j] * wy * wx : Dtype(0);
    }
  }
}

// The passes over one RoI (forward) or one RoI and channel block (backward), made plain
// functions per (K, Dtype) below so that each can be multi-versioned.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void ForwardRoi(const Dtype* in, int width,
    int channels, int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty,
    const Taps<Dtype>* tx, bool is_max, Dtype* acc, int* am) {
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      const int bin = ph * pooled_w + pw;
      PoolBinChannels<K>(in, width, channels, ty + ph * b.grid_h, b.grid_h,
          tx + pw * b.grid_w, b.grid_w, is_max, acc + static_cast<int64_t>(bin) * channels,
          is_max ? am + static_cast<int64_t>(bin) * channels : NULL);
    }
  }
}

// AVE backward of one RoI for channels [c0, c0 + block): g holds its top diff as
// (bins, block), out points at the channels-last gradient of its image, offset by c0.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void BackwardRoiAve(Dtype* out, int width,
    int channels, int block, int pooled_h, int pooled_w, const Box<Dtype>& b,
    const Taps<Dtype>* ty, const Taps<Dtype>* tx, Dtype* g) {
  // g: (bins, block), divided in place.
  const int count = b.grid_h * b.grid_w;
  const Dtype d = count > 1 ? count : 1;
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      Dtype* gb = g + (ph * pooled_w + pw) * block;
#pragma omp simd
      for (int j = 0; j < block; ++j) gb[j] /= d;
      const Taps<Dtype>* bty = ty + ph * b.grid_h;
      const Taps<Dtype>* btx = tx + pw * b.grid_w;
      for (int iy = 0; iy < b.grid_h; ++iy) {
        if (!bty[iy].inside) continue;
        for (int ix = 0; ix < b.grid_w; ++ix) {
          if (btx[ix].inside) ScatterChannels<K>(out, width, channels, block, bty[iy],
              btx[ix], gb);
        }
      }
    }
  }
}

// MAX backward of one RoI for channels [c0, c0 + block): g and am hold its top diff and
// argmaxes as (bins, block).
template <int K, typename Dtype>
inline __attribute__((always_inline)) void BackwardRoiMax(Dtype* out, int width,
    int channels, int block, int pooled_h, int pooled_w, const Box<Dtype>& b,
    const Taps<Dtype>* ty, const Taps<Dtype>* tx, const Dtype* g, const int* am) {
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      const int bin = ph * pooled_w + pw;
      const Taps<Dtype>* bty = ty + ph * b.grid_h;
      const Taps<Dtype>* btx = tx + pw * b.grid_w;
      for (int iy = 0; iy < b.grid_h; ++iy) {
        if (!bty[iy].inside) continue;
        for (int ix = 0; ix < b.grid_w; ++ix) {
          if (btx[ix].inside) ScatterWinners<K>(out, width, channels, block, bty[iy],
              btx[ix], iy * b.grid_w + ix, am + bin * block, g + bin * block);
        }
      }
    }
  }
}

#define ROI_CPU_KERNELS(K, Dtype, suffix) \
ROI_CPU_CLONES void ForwardRoi##suffix(const Dtype* in, int width, int channels, int pooled_h, \
    int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, const Taps<Dtype>* tx, \
    bool is_max, Dtype* acc, int* am) { \
  ForwardRoi<K>(in, width, channels, pooled_h, pooled_w, b, ty, tx, is_max, acc, am); \
} \
ROI_CPU_CLONES void BackwardRoiAve##suffix(Dtype* out, int width, int channels, int block, \
    int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, \
    const Taps<Dtype>* tx, Dtype* g) { \
  BackwardRoiAve<K>(out, width, channels, block, pooled_h, pooled_w, b, ty, tx, g); \
} \
ROI_CPU_CLONES void BackwardRoiMax##suffix(Dtype* out, int width, int channels, int block, \
    int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, \
    const Taps<Dtype>* tx, const Dtype* g, const int* am) { \
  BackwardRoiMax<K>(out, width, channels, block, pooled_h, pooled_w, b, ty, tx, g, am); \
}

ROI_CPU_KERNELS(2, float, 2f)
ROI_CPU_KERNELS(4, float, 4f)
ROI_CPU_KERNELS(2, double, 2d)
ROI_CPU_KERNELS(4, double, 4d)

// The multi-versioned function for (K, Dtype).
template <int K, typename Dtype> struct Kernels;
template <> struct Kernels<2, float> {
  static constexpr auto forward = ForwardRoi2f;
  static constexpr auto backward_ave = BackwardRoiAve2f;
  static constexpr auto backward_max = BackwardRoiMax2f;
};
template <> struct Kernels<4, float> {
  static constexpr auto forward = ForwardRoi4f;
  static constexpr auto backward_ave = BackwardRoiAve4f;
  static constexpr auto backward_max = BackwardRoiMax4f;
};
template <> struct Kernels<2, double> {
  static constexpr auto forward = ForwardRoi2d;
  static constexpr auto backward_ave = BackwardRoiAve2d;
  static constexpr auto backward_max = BackwardRoiMax2d;
};
template <> struct Kernels<4, double> {
  static constexpr auto forward = ForwardRoi4d;
  static constexpr auto backward_ave = BackwardRoiAve4d;
  static constexpr auto backward_max = BackwardRoiMax4d;
};

// Channels per block of the backward pass: a block's share of a pixel is 8 (float) or 16
// (double) cache lines, and C / kBlock blocks (4 for C = 512) keep two threads busy.
const int kBlock = 128;

}  // namespace

template <typename Dtype>
void CpuPasses<Dtype>::ComputeTaps(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois) {
  boxes_.resize(num_rois);
  tap_y_start_.resize(num_rois + 1);
  tap_x_start_.resize(num_rois + 1);
  tap_y_start_[0] = tap_x_start_[0] = 0;
  for (int n = 0; n < num_rois; ++n) {
    boxes_[n] = roi_box(rois + n * 5, on_map(p, maps[MapOf(level, n)]));
    tap_y_start_[n + 1] = tap_y_start_[n] + p.pooled_h * boxes_[n].grid_h;
    tap_x_start_[n + 1] = tap_x_start_[n] + p.pooled_w * boxes_[n].grid_w;
  }
  taps_y_.resize(tap_y_start_[num_rois]);
  taps_x_.resize(tap_x_start_[num_rois]);
#pragma omp parallel for if (tap_y_start_[num_rois] + tap_x_start_[num_rois] > 4096)
  for (int n = 0; n < num_rois; ++n) {
    const Params<Dtype> q = on_map(p, maps[MapOf(level, n)]);
    const Box<Dtype>& b = boxes_[n];
    for (int ph = 0; ph < q.pooled_h; ++ph) {
      for (int iy = 0; iy < b.grid_h; ++iy) {
        taps_y_[tap_y_start_[n] + ph * b.grid_h + iy] =
            sample_taps(b.start_h, b.bin_h, ph, iy, b.grid_h, q.height, q.bi_type,
                q.alignment);
      }
    }
    for (int pw = 0; pw < q.pooled_w; ++pw) {
      for (int ix = 0; ix < b.grid_w; ++ix) {
        taps_x_[tap_x_start_[n] + pw * b.grid_w + ix] =
            sample_taps(b.start_w, b.bin_w, pw, ix, b.grid_w, q.width, q.bi_type,
                q.alignment);
      }
    }
  }
}

template <typename Dtype>
void CpuPasses<Dtype>::GroupByLevel(const int* level, int num_rois, int num_maps) {
  group_start_.assign(num_maps + 1, 0);
  for (int n = 0; n < num_rois; ++n) ++group_start_[MapOf(level, n) + 1];
  for (int l = 0; l < num_maps; ++l) group_start_[l + 1] += group_start_[l];
  std::vector<int> next(group_start_.begin(), group_start_.end() - 1);
  group_.resize(num_rois);
  for (int n = 0; n < num_rois; ++n) group_[next[MapOf(level, n)]++] = n;
}

template <typename Dtype>
void CpuPasses<Dtype>::Forward(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int num, int channels, Dtype* top, int* argmax) {
  if (num_rois == 0 || channels == 0) return;
  ComputeTaps(p, maps, level, rois, num_rois);
  GroupByLevel(level, num_rois, static_cast<int>(maps.size()));
  // One map at a time, and only maps that RoIs use: its channels-last copy stays in cache
  // while its RoIs are pooled.
  for (size_t l = 0; l < maps.size(); ++l) {
    const int first = group_start_[l], count = group_start_[l + 1] - first;
    if (count == 0) continue;
    const int plane = maps[l].height * maps[l].width;
    channels_last_.resize(static_cast<int64_t>(num) * channels * plane);
    channels_last::FromNchw(maps[l].data, num, channels, plane, channels_last_.data());
    with_tap_count(p.bi_type, [&](auto taps) {
      this->template ForwardTaps<decltype(taps)::value>(p, maps[l], rois,
          group_.data() + first, count, channels, top, argmax);
    });
  }
}

template <typename Dtype>
template <int K>
void CpuPasses<Dtype>::ForwardTaps(const Params<Dtype>& p, const MapRef<Dtype>& m,
    const Dtype* rois, const int* group, int count, int channels, Dtype* top, int* argmax) {
  const int bins = p.pooled_h * p.pooled_w;
  const bool parallel =
      static_cast<int64_t>(count) * bins * channels > channels_last::kParallelWork;
#pragma omp parallel if (parallel)
  {
    // This thread's outputs of one RoI, channels last: (bins, channels).
    std::vector<Dtype> acc(static_cast<int64_t>(bins) * channels);
    std::vector<int> am(p.is_max ? acc.size() : 0);
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < count; ++i) {
      const int n = group[i];
      const Dtype* in = channels_last_.data()
          + static_cast<int64_t>(rois[n * 5]) * m.height * m.width * channels;
      Kernels<K, Dtype>::forward(in, m.width, channels, p.pooled_h, p.pooled_w, boxes_[n],
          taps_y_.data() + tap_y_start_[n], taps_x_.data() + tap_x_start_[n], p.is_max,
          acc.data(), am.data());
      Dtype* out = top + static_cast<int64_t>(n) * channels * bins;
      for (int c = 0; c < channels; ++c) {
        for (int b = 0; b < bins; ++b) out[c * bins + b] = acc[b * channels + c];
      }
      if (argmax) {
        int* out_am = argmax + static_cast<int64_t>(n) * channels * bins;
        for (int c = 0; c < channels; ++c) {
          for (int b = 0; b < bins; ++b) out_am[c * bins + b] = am[b * channels + c];
        }
      }
    }
  }
}

template <typename Dtype>
void CpuPasses<Dtype>::Backward(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int num, int channels, const Dtype* top_diff, const int* argmax) {
  if (num_rois > 0 && channels > 0) ComputeTaps(p, maps, level, rois, num_rois);
  GroupByLevel(level, num_rois, static_cast<int>(maps.size()));
  for (size_t l = 0; l < maps.size(); ++l) {
    const int first = group_start_[l], count = group_start_[l + 1] - first;
    const int plane = maps[l].height * maps[l].width;
    const int64_t size = static_cast<int64_t>(num) * channels * plane;
    if (count == 0 || channels == 0) {  // no RoI reaches this map
      channels_last::Zero(size, maps[l].diff);
      continue;
    }
    channels_last_.resize(size);
    channels_last::Zero(size, channels_last_.data());
    with_tap_count(p.bi_type, [&](auto taps) {
      this->template BackwardTaps<decltype(taps)::value>(p, maps[l], rois,
          group_.data() + first, count, channels, top_diff, argmax);
    });
    channels_last::ToNchw(channels_last_.data(), num, channels, plane, maps[l].diff);
  }
}

template <typename Dtype>
template <int K>
void CpuPasses<Dtype>::BackwardTaps(const Params<Dtype>& p, const MapRef<Dtype>& m,
    const Dtype* rois, const int* group, int count, int channels, const Dtype* top_diff,
    const int* argmax) {
  const int bins = p.pooled_h * p.pooled_w;
  const int blocks = (channels + kBlock - 1) / kBlock;
  const bool parallel = blocks > 1
      && static_cast<int64_t>(count) * bins * channels > channels_last::kParallelWork;
#pragma omp parallel if (parallel)
  {
    // One RoI's top diff (and argmaxes) for the thread's block, channels last: (bins, block).
    std::vector<Dtype> g(static_cast<int64_t>(bins) * kBlock);
    std::vector<int> am(p.is_max ? g.size() : 0);
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < blocks; ++blk) {
      const int c0 = blk * kBlock, block = std::min(kBlock, channels - c0);
      for (int i = 0; i < count; ++i) {
        const int n = group[i];
        Dtype* out = channels_last_.data()
            + static_cast<int64_t>(rois[n * 5]) * m.height * m.width * channels + c0;
        const Box<Dtype>& b = boxes_[n];
        const Taps<Dtype>* ty = taps_y_.data() + tap_y_start_[n];
        const Taps<Dtype>* tx = taps_x_.data() + tap_x_start_[n];
        const int64_t first = (static_cast<int64_t>(n) * channels + c0) * bins;
        for (int j = 0; j < block; ++j) {
          const Dtype* src = top_diff + first + j * bins;
          for (int bin = 0; bin < bins; ++bin) g[bin * block + j] = src[bin];
        }
        if (!p.is_max) {
          Kernels<K, Dtype>::backward_ave(out, m.width, channels, block, p.pooled_h,
              p.pooled_w, b, ty, tx, g.data());
          continue;
        }
        for (int j = 0; j < block; ++j) {
          const int* src = argmax + first + j * bins;
          for (int bin = 0; bin < bins; ++bin) am[bin * block + j] = src[bin];
        }
        Kernels<K, Dtype>::backward_max(out, m.width, channels, block, p.pooled_h,
            p.pooled_w, b, ty, tx, g.data(), am.data());
      }
    }
  }
}

INSTANTIATE_CLASS(CpuPasses);

}  // namespace roi_align
}  // namespace caffe
