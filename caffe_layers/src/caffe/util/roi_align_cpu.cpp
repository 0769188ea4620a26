#include <stdint.h>

#include <algorithm>
#include <vector>

#include "caffe/layers/channels_last.hpp"
#include "caffe/layers/roi_align_cpu.hpp"
#include "caffe/layers/roi_cpu_simd.hpp"

namespace caffe {
namespace roi_align {

namespace {

using cpu_simd::LoadV;
using cpu_simd::Select;
using cpu_simd::Simd;
using cpu_simd::Splat;
using cpu_simd::StoreV;

inline int MapOf(const int* level, int n) { return level ? level[n] : 0; }

// The forward pass, separable and channel-blocked. A sample's value is interpolate<K>'s
//   v = sum_k wy[k] * r_k,   r_k = sum_l wx[l] * map[row_k][col_l],
// and the samples of one bin share rows: two samples with the same row taps (samples less
// than a pixel apart) read the same r_k. So each bin is planned once (BinPlan: which rows,
// which r_k each sample combines), then run for every block of kVectorsPerBlock vector
// registers of channels, with the r_k of the block in a small buffer and the bin's
// accumulators in registers.
//
// Bit-identity with interpolate / pool_bin: each r_k and v is the same products added in the
// same order, except that interpolate starts each sum from 0. Adding 0 first changes nothing
// but the sign of a zero result (0 + -0 = +0), and that difference, carried through the
// later products and sums, again only ever changes the sign of a zero. AVE sums the samples
// into an accumulator that starts at +0, which can never become -0, so its sum is identical;
// MAX keeps a sample's value itself, so it adds 0 once to v, which turns -0 into +0 exactly
// as interpolate's leading 0 does. The results are therefore bit-identical, which
// TestForwardBitIdenticalToDefinition and the emulated-kernel tests check.

// The widest block of channels: the stride of a row's r_k in the bin's buffer, and the most
// channels PoolBinTail takes.
const int kLanes = 64;
// Rows whose r_k a bin keeps at once; a bin whose samples need more (a large sampling grid)
// runs its samples in groups of consecutive sample rows, each group with its own rows.
const int kMaxRows = 8;
static_assert(kMaxRows >= 4, "a bicubic sample row needs 4 rows in one group");

// r = sum_l w[l] * tap[l][c], one r_k of one sample column for a block of channels.
template <int K, typename Dtype>
struct RowJob {
  const Dtype* tap[K];  // at channel 0 of the map's channels-last copy
  Dtype w[K];
  int dst;              // offset of r in the bin's buffer
};

// v = sum_k w[k] * r[src[k]], one sample. inside = false: a sample outside the map (value 0).
template <int K, typename Dtype>
struct SampleJob {
  int src[K];
  Dtype w[K];
  int s;                // iy * grid_w + ix, the MAX argmax
  bool inside;
};

// The plan of one bin: groups of row jobs then sample jobs, run group after group.
template <int K, typename Dtype>
struct BinPlan {
  std::vector<RowJob<K, Dtype> > rows;
  std::vector<SampleJob<K, Dtype> > samples;
  std::vector<int> row_start, sample_start;  // group g: [start[g], start[g + 1])
  int count;  // grid_h * grid_w, the AVE divisor before max(., 1)

  // ty / tx: the bin's grid_h / grid_w sample taps; in: the image's channels-last map.
  void Build(const Dtype* in, int width, int channels, const Taps<Dtype>* ty, int grid_h,
      const Taps<Dtype>* tx, int grid_w) {
    rows.clear();
    samples.clear();
    row_start.assign(1, 0);
    sample_start.assign(1, 0);
    count = grid_h * grid_w;
    int group_rows[kMaxRows];
    int n_rows = 0;
    for (int iy = 0; iy < grid_h; ++iy) {
      const Taps<Dtype>& y = ty[iy];
      int slot[K];
      if (y.inside) {
        // The rows this sample row adds to the group; a full group is closed first.
        int added = 0;
        for (int k = 0; k < K; ++k) {
          bool seen = false;
          for (int r = 0; r < n_rows && !seen; ++r) seen = group_rows[r] == y.index(k);
          for (int m = 0; m < k && !seen; ++m) seen = y.index(m) == y.index(k);
          added += !seen;
        }
        if (n_rows + added > kMaxRows) {
          row_start.push_back(static_cast<int>(rows.size()));
          sample_start.push_back(static_cast<int>(samples.size()));
          n_rows = 0;
        }
        for (int k = 0; k < K; ++k) {
          int r = 0;
          while (r < n_rows && group_rows[r] != y.index(k)) ++r;
          if (r == n_rows) {
            group_rows[n_rows++] = y.index(k);
            const Dtype* row = in + static_cast<int64_t>(y.index(k)) * width * channels;
            for (int ix = 0; ix < grid_w; ++ix) {
              if (!tx[ix].inside) continue;
              RowJob<K, Dtype> job;
              for (int l = 0; l < K; ++l) {
                job.tap[l] = row + static_cast<int64_t>(tx[ix].index(l)) * channels;
                job.w[l] = tx[ix].weight(l);
              }
              job.dst = (r * grid_w + ix) * kLanes;
              rows.push_back(job);
            }
          }
          slot[k] = r;
        }
      }
      for (int ix = 0; ix < grid_w; ++ix) {
        SampleJob<K, Dtype> job;
        job.inside = y.inside && tx[ix].inside;
        job.s = iy * grid_w + ix;
        for (int k = 0; k < K; ++k) {
          job.src[k] = job.inside ? (slot[k] * grid_w + ix) * kLanes : 0;
          job.w[k] = y.weight(k);
        }
        samples.push_back(job);
      }
    }
    row_start.push_back(static_cast<int>(rows.size()));
    sample_start.push_back(static_cast<int>(samples.size()));
  }
};

// Vector registers per block of PoolBinVectors: 64 floats with AVX-512, 32 with AVX2, 16
// with SSE. More would not fit AVX2's 16 registers with their temporaries.
const int kVectorsPerBlock = 4;

// One bin for the last channels [c0, c0 + n) (n < kLanes: what is left after the full blocks
// of PoolBinVectors): out[j] (and am[j] for MAX) as
// pool_bin<K> computes them. buf: kMaxRows * grid_w * kLanes values.
template <int K, typename Dtype>
inline __attribute__((always_inline)) void PoolBinTail(const BinPlan<K, Dtype>& plan,
    int c0, int n, bool is_max, Dtype* __restrict__ buf, Dtype* __restrict__ out,
    int* __restrict__ am) {
  Dtype acc[kLanes];
  int best[kLanes];
#pragma omp simd
  for (int j = 0; j < kLanes; ++j) {
    acc[j] = 0;
    best[j] = -1;
  }
  const int groups = static_cast<int>(plan.row_start.size()) - 1;
  for (int g = 0; g < groups; ++g) {
    for (int i = plan.row_start[g]; i < plan.row_start[g + 1]; ++i) {
      const RowJob<K, Dtype>& job = plan.rows[i];
      const Dtype* tap[K];
      for (int l = 0; l < K; ++l) tap[l] = job.tap[l] + c0;
      Dtype* __restrict__ r = buf + job.dst;
#pragma omp simd
      for (int j = 0; j < n; ++j) {
        Dtype t = job.w[0] * tap[0][j];
#pragma GCC unroll 4
        for (int l = 1; l < K; ++l) t += job.w[l] * tap[l][j];
        r[j] = t;
      }
    }
    for (int i = plan.sample_start[g]; i < plan.sample_start[g + 1]; ++i) {
      const SampleJob<K, Dtype>& job = plan.samples[i];
      if (!job.inside) {
        if (!is_max) continue;  // AVE: an outside sample adds 0
#pragma omp simd
        for (int j = 0; j < n; ++j) {
          const bool take = job.s == 0 || Dtype(0) > acc[j];
          acc[j] = take ? Dtype(0) : acc[j];
          best[j] = take ? job.s : best[j];
        }
        continue;
      }
      const Dtype* src[K];
      for (int k = 0; k < K; ++k) src[k] = buf + job.src[k];
      if (!is_max) {
#pragma omp simd
        for (int j = 0; j < n; ++j) {
          Dtype v = job.w[0] * src[0][j];
#pragma GCC unroll 4
          for (int k = 1; k < K; ++k) v += job.w[k] * src[k][j];
          acc[j] += v;
        }
        continue;
      }
#pragma omp simd
      for (int j = 0; j < n; ++j) {
        Dtype v = job.w[0] * src[0][j];
#pragma GCC unroll 4
        for (int k = 1; k < K; ++k) v += job.w[k] * src[k][j];
        v += Dtype(0);  // -0 -> +0, as interpolate's leading 0 (see above)
        const bool take = job.s == 0 || v > acc[j];
        acc[j] = take ? v : acc[j];
        best[j] = take ? job.s : best[j];
      }
    }
  }
  if (is_max) {
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      out[j] = acc[j];
      am[j] = best[j];
    }
    return;
  }
  const Dtype d = plan.count > 1 ? plan.count : 1;
#pragma omp simd
  for (int j = 0; j < n; ++j) out[j] = acc[j] / d;
}

// PoolBinTail for a full block of VectorsPerBlock vectors of channels: the same operations
// on each lane in the same order, with the accumulators and argmaxes held in registers.
template <int K, int Bytes, typename Dtype>
inline __attribute__((always_inline)) void PoolBinVectors(const BinPlan<K, Dtype>& plan,
    int c0, bool is_max, Dtype* __restrict__ buf, Dtype* __restrict__ out,
    int* __restrict__ am) {
  typedef typename Simd<Dtype, Bytes>::V V;
  typedef typename Simd<Dtype, Bytes>::I I;
  const int W = sizeof(V) / sizeof(Dtype);  // lanes per vector
  const int N = kVectorsPerBlock;
  static_assert(N * sizeof(V) / sizeof(Dtype) <= kLanes, "a block fits a row of the buffer");
  V acc[N];
  I best[N];
#pragma GCC unroll 16
  for (int v = 0; v < N; ++v) {
    acc[v] = Splat<V>(Dtype(0));
    best[v] = Splat<I>(-1);
  }
  const int groups = static_cast<int>(plan.row_start.size()) - 1;
  for (int g = 0; g < groups; ++g) {
    for (int i = plan.row_start[g]; i < plan.row_start[g + 1]; ++i) {
      const RowJob<K, Dtype>& job = plan.rows[i];
      V w[K];
      for (int l = 0; l < K; ++l) w[l] = Splat<V>(job.w[l]);
#pragma GCC unroll 16
      for (int v = 0; v < N; ++v) {
        V t = w[0] * LoadV<V>(job.tap[0] + c0 + v * W);
#pragma GCC unroll 4
        for (int l = 1; l < K; ++l) t += w[l] * LoadV<V>(job.tap[l] + c0 + v * W);
        StoreV(buf + job.dst + v * W, t);
      }
    }
    for (int i = plan.sample_start[g]; i < plan.sample_start[g + 1]; ++i) {
      const SampleJob<K, Dtype>& job = plan.samples[i];
      if (!job.inside && !is_max) continue;  // AVE: an outside sample adds 0
      V val[N];
      if (job.inside) {
        V w[K];
        for (int k = 0; k < K; ++k) w[k] = Splat<V>(job.w[k]);
#pragma GCC unroll 16
        for (int v = 0; v < N; ++v) {
          V t = w[0] * LoadV<V>(buf + job.src[0] + v * W);
#pragma GCC unroll 4
          for (int k = 1; k < K; ++k) t += w[k] * LoadV<V>(buf + job.src[k] + v * W);
          val[v] = t;
        }
      } else {
#pragma GCC unroll 16
        for (int v = 0; v < N; ++v) val[v] = Splat<V>(Dtype(0));
      }
      if (!is_max) {
#pragma GCC unroll 16
        for (int v = 0; v < N; ++v) acc[v] += val[v];
        continue;
      }
      const I s = Splat<I>(job.s);
#pragma GCC unroll 16
      for (int v = 0; v < N; ++v) {
        val[v] += Splat<V>(Dtype(0));  // -0 -> +0, as interpolate's leading 0
        if (job.s == 0) {              // the first sample is taken
          acc[v] = val[v];
          best[v] = s;
        } else {
          const I take = val[v] > acc[v];
          acc[v] = Select(take, val[v], acc[v]);
          best[v] = (take & s) | (~take & best[v]);
        }
      }
    }
  }
  if (is_max) {
#pragma GCC unroll 16
    for (int v = 0; v < N; ++v) {
      StoreV(out + v * W, acc[v]);
      for (int j = 0; j < W; ++j) am[v * W + j] = static_cast<int>(best[v][j]);
    }
    return;
  }
  const V d = Splat<V>(static_cast<Dtype>(plan.count > 1 ? plan.count : 1));
#pragma GCC unroll 16
  for (int v = 0; v < N; ++v) StoreV(out + v * W, acc[v] / d);
}

// One bin, every channel: out / am point at the bin's row of the RoI's (bins, channels) tile.
template <int K, int Bytes, typename Dtype>
inline __attribute__((always_inline)) void PoolBin(const BinPlan<K, Dtype>& plan,
    int channels, bool is_max, Dtype* buf, Dtype* out, int* am) {
  int c0 = 0;
  const int step = kVectorsPerBlock * Bytes / static_cast<int>(sizeof(Dtype));
  for (; c0 + step <= channels; c0 += step) {
    PoolBinVectors<K, Bytes>(plan, c0, is_max, buf, out + c0, is_max ? am + c0 : NULL);
  }
  if (c0 < channels) {
    PoolBinTail<K>(plan, c0, channels - c0, is_max, buf, out + c0,
        is_max ? am + c0 : NULL);
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

// Channels per block of the backward pass: a block's share of a pixel is 8 (float) or 16
// (double) cache lines, and C / kBlock blocks (4 for C = 512) keep two threads busy.
const int kBlock = 128;

// ScatterChannels / ScatterWinners for a full block of kBlock channels in registers of Bytes
// (the same operations per lane, in the same order). am: the block's argmaxes (MAX; float
// only, whose integer lanes are as wide as an int), or NULL (AVE: every channel).
template <int Bytes, int K, typename Dtype>
inline __attribute__((always_inline)) void ScatterVectors(Dtype* out, int width,
    int channels, const Taps<Dtype>& ty, const Taps<Dtype>& tx, int sample,
    const int* __restrict__ am, const Dtype* __restrict__ g) {
  typedef typename Simd<Dtype, Bytes>::V V;
  typedef typename Simd<Dtype, Bytes>::I I;
  const int W = sizeof(V) / sizeof(Dtype);
  const int N = kBlock / W;
  I take[N];
  if (am) {
    const I s = Splat<I>(sample);
#pragma GCC unroll 16
    for (int v = 0; v < N; ++v) take[v] = LoadV<I>(am + v * W) == s;
  }
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const V wy = Splat<V>(ty.weight(k));
#pragma GCC unroll 4
    for (int l = 0; l < K; ++l) {
      const V wx = Splat<V>(tx.weight(l));
      Dtype* dst = out + (static_cast<int64_t>(ty.index(k)) * width + tx.index(l)) * channels;
#pragma GCC unroll 16
      for (int v = 0; v < N; ++v) {
        V term = LoadV<V>(g + v * W) * wy * wx;
        if (am) term = Select(take[v], term, Splat<V>(Dtype(0)));
        StoreV(dst + v * W, LoadV<V>(dst + v * W) + term);
      }
    }
  }
}

// AVE backward of one RoI for channels [c0, c0 + block): g holds its top diff as
// (bins, block), out points at the channels-last gradient of its image, offset by c0.
template <int Bytes, int K, typename Dtype>
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
          if (!btx[ix].inside) continue;
          if (block == kBlock) {
            ScatterVectors<Bytes, K>(out, width, channels, bty[iy], btx[ix], 0, NULL, gb);
          } else {
            ScatterChannels<K>(out, width, channels, block, bty[iy], btx[ix], gb);
          }
        }
      }
    }
  }
}

// MAX backward of one RoI for channels [c0, c0 + block): g and am hold its top diff and
// argmaxes as (bins, block).
template <int Bytes, int K, typename Dtype>
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
          if (!btx[ix].inside) continue;
          if (block == kBlock && sizeof(Dtype) == sizeof(int)) {
            ScatterVectors<Bytes, K>(out, width, channels, bty[iy], btx[ix],
                iy * b.grid_w + ix, am + bin * block, g + bin * block);
          } else {
            ScatterWinners<K>(out, width, channels, block, bty[iy], btx[ix],
                iy * b.grid_w + ix, am + bin * block, g + bin * block);
          }
        }
      }
    }
  }
}

// The forward of one RoI from `in` (its image's channels-last map) into a channels-last tile
// (bins, channels; bin rows ld values apart): each bin planned, then pooled a block of
// channels at a time. buf: kMaxRows * grid_w * kLanes values.
template <int Bytes, int K, typename Dtype>
inline __attribute__((always_inline)) void ForwardRoi(const Dtype* in, int width,
    int channels, int pooled_h, int pooled_w, const Box<Dtype>& b,
    const Taps<Dtype>* ty, const Taps<Dtype>* tx, bool is_max, BinPlan<K, Dtype>* plan,
    Dtype* buf, Dtype* tile, int* tile_am, int ld) {
  for (int ph = 0; ph < pooled_h; ++ph) {
    for (int pw = 0; pw < pooled_w; ++pw) {
      plan->Build(in, width, channels, ty + ph * b.grid_h, b.grid_h, tx + pw * b.grid_w,
          b.grid_w);
      const int64_t bin = ph * pooled_w + pw;
      PoolBin<K, Bytes>(*plan, channels, is_max, buf, tile + bin * ld,
          is_max ? tile_am + bin * ld : NULL);
    }
  }
}

// The passes as plain functions per (K, Dtype) and instruction set (ROI_ISA_VERSIONS).
#define ROI_CPU_KERNELS(K, Dtype, suffix) \
ROI_ISA_VERSIONS(ForwardRoi##suffix, (const Dtype* in, int width, int channels, \
    int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, \
    const Taps<Dtype>* tx, bool is_max, BinPlan<K, Dtype>* plan, Dtype* buf, Dtype* tile, \
    int* tile_am, int ld), \
    ForwardRoi<kVecBytes>(in, width, channels, pooled_h, pooled_w, b, ty, tx, is_max, plan, \
        buf, tile, tile_am, ld)) \
ROI_ISA_VERSIONS(BackwardRoiAve##suffix, (Dtype* out, int width, int channels, int block, \
    int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, \
    const Taps<Dtype>* tx, Dtype* g), \
    (BackwardRoiAve<kVecBytes, K>(out, width, channels, block, pooled_h, pooled_w, b, ty, \
        tx, g))) \
ROI_ISA_VERSIONS(BackwardRoiMax##suffix, (Dtype* out, int width, int channels, int block, \
    int pooled_h, int pooled_w, const Box<Dtype>& b, const Taps<Dtype>* ty, \
    const Taps<Dtype>* tx, const Dtype* g, const int* am), \
    (BackwardRoiMax<kVecBytes, K>(out, width, channels, block, pooled_h, pooled_w, b, ty, \
        tx, g, am)))

ROI_CPU_KERNELS(2, float, 2f)
ROI_CPU_KERNELS(4, float, 4f)
ROI_CPU_KERNELS(2, double, 2d)
ROI_CPU_KERNELS(4, double, 4d)

// The version of each pass for (K, Dtype) that this machine runs.
template <int K, typename Dtype> struct Kernels;
#define ROI_CPU_PICK(K, Dtype, suffix) \
template <> struct Kernels<K, Dtype> { \
  static decltype(&ForwardRoi##suffix##Plain) forward() { \
    return ROI_ISA_PICK(ForwardRoi##suffix); \
  } \
  static decltype(&BackwardRoiAve##suffix##Plain) backward_ave() { \
    return ROI_ISA_PICK(BackwardRoiAve##suffix); \
  } \
  static decltype(&BackwardRoiMax##suffix##Plain) backward_max() { \
    return ROI_ISA_PICK(BackwardRoiMax##suffix); \
  } \
};
ROI_CPU_PICK(2, float, 2f)
ROI_CPU_PICK(4, float, 4f)
ROI_CPU_PICK(2, double, 2d)
ROI_CPU_PICK(4, double, 4d)


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
  int grid_w = 1;  // the widest sampling grid: the size of the r_k buffer
  for (int i = 0; i < count; ++i) grid_w = std::max(grid_w, boxes_[group[i]].grid_w);
  const auto forward = Kernels<K, Dtype>::forward();
  const bool stream = static_cast<int64_t>(count) * bins * channels * sizeof(Dtype)
      > channels_last::kStreamBytes;
#pragma omp parallel if (parallel)
  {
    // This thread's outputs of one RoI, channels last: (bins, channels); its bin plan and
    // r_k buffer.
    const int ld = channels_last::PaddedRow(channels);
    std::vector<Dtype> tile(static_cast<int64_t>(bins) * ld);
    std::vector<int> tile_am(p.is_max ? tile.size() : 0);
    std::vector<Dtype> buf(static_cast<int64_t>(kMaxRows) * grid_w * kLanes);
    BinPlan<K, Dtype> plan;
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < count; ++i) {
      const int n = group[i];
      const Dtype* in = channels_last_.data()
          + static_cast<int64_t>(rois[n * 5]) * m.height * m.width * channels;
      forward(in, m.width, channels, p.pooled_h, p.pooled_w, boxes_[n],
          taps_y_.data() + tap_y_start_[n], taps_x_.data() + tap_x_start_[n], p.is_max,
          &plan, buf.data(), tile.data(), tile_am.data(), ld);
      const int64_t first = static_cast<int64_t>(n) * channels * bins;
      channels_last::Transpose(tile.data(), ld, bins, channels, top + first, bins, stream);
      if (argmax) {
        channels_last::Transpose(tile_am.data(), ld, bins, channels, argmax + first, bins,
            stream);
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
  const auto backward_ave = Kernels<K, Dtype>::backward_ave();
  const auto backward_max = Kernels<K, Dtype>::backward_max();
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
        channels_last::Transpose(top_diff + first, bins, block, bins, g.data(), block);
        if (!p.is_max) {
          backward_ave(out, m.width, channels, block, p.pooled_h,
              p.pooled_w, b, ty, tx, g.data());
          continue;
        }
        channels_last::Transpose(argmax + first, bins, block, bins, am.data(), block);
        backward_max(out, m.width, channels, block, p.pooled_h,
            p.pooled_w, b, ty, tx, g.data(), am.data());
      }
    }
  }
}

INSTANTIATE_CLASS(CpuPasses);

}  // namespace roi_align
}  // namespace caffe
