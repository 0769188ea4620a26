#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <stdint.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "caffe/common.hpp"
#include "caffe/layers/channels_last.hpp"

namespace caffe {
namespace channels_last {

namespace {
// Tiles of kTile channels x kTile pixels for the OpenMP split of FromNchw / ToNchw.
const int kTile = 256;
// The longest destination row that TransposeTiled stages in L1 (16 rows of it: 16 KiB).
const int kStageRows = 256;

// The plain transpose: any type, any machine.
template <typename T>
void TransposePlain(const T* src, int64_t src_stride, int rows, int cols, T* dst,
    int64_t dst_stride) {
  const int kBlock = 8;
  for (int c0 = 0; c0 < cols; c0 += kBlock) {
    const int c1 = std::min(c0 + kBlock, cols);
    for (int r0 = 0; r0 < rows; r0 += kBlock) {
      const int r1 = std::min(r0 + kBlock, rows);
      for (int c = c0; c < c1; ++c) {
        for (int r = r0; r < r1; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
      }
    }
  }
}

#if defined(ROI_X86_INTRINSICS)
// GCC 12's intrinsics header starts some AVX-512 operations from an "undefined" register,
// which -W(maybe-)uninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// The tile operations of one instruction set, for TransposeTiled: Tile (one kTile x kTile
// tile), CopyOut (dst[0, n) = src[0, n) with non-temporal stores for the aligned middle,
// which write whole lines without reading them into the cache first) and Fence (orders the
// streaming stores before any later use). Called per tile, not inlined into the driver, so
// that the driver is written once.
struct Avx512Ops {
  static const int kTile = 16;
  // One tile: out[i * out_stride + r0 + j] = src[(r0 + j) * src_stride + c0 + i] for i < nc,
  // j < nr (both at most kTile); out is the destination's row c0. 16 x 16 in AVX-512
  // registers (unpack, unpack, two 128-bit lane shuffles), partial tiles through masks.
  __attribute__((target("avx512f"))) static void Tile(const float* src, int64_t src_stride,
      int r0, int nr, int c0, int nc, float* out, int64_t out_stride) {
    const __mmask16 load_mask = static_cast<__mmask16>((1u << nc) - 1);
    const __mmask16 store_mask = static_cast<__mmask16>((1u << nr) - 1);
    __m512 a[16], b[16];
    for (int i = 0; i < 16; ++i) {
      a[i] = i < nr ? _mm512_maskz_loadu_ps(load_mask, src + (r0 + i) * src_stride + c0)
          : _mm512_setzero_ps();
    }
    for (int i = 0; i < 16; i += 2) {
      b[i] = _mm512_unpacklo_ps(a[i], a[i + 1]);
      b[i + 1] = _mm512_unpackhi_ps(a[i], a[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      for (int j = 0; j < 2; ++j) {
        a[i + 2 * j] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b[i + j]),
            _mm512_castps_pd(b[i + j + 2])));
        a[i + 2 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b[i + j]),
            _mm512_castps_pd(b[i + j + 2])));
      }
    }
    for (int i = 0; i < 16; i += 8) {
      for (int j = 0; j < 4; ++j) {
        b[i + j] = _mm512_shuffle_f32x4(a[i + j], a[i + j + 4], 0x88);
        b[i + j + 4] = _mm512_shuffle_f32x4(a[i + j], a[i + j + 4], 0xdd);
      }
    }
    for (int j = 0; j < 8; ++j) {
      a[j] = _mm512_shuffle_f32x4(b[j], b[j + 8], 0x88);
      a[j + 8] = _mm512_shuffle_f32x4(b[j], b[j + 8], 0xdd);
    }
    for (int i = 0; i < 16; ++i) {
      if (i < nc) _mm512_mask_storeu_ps(out + i * out_stride + r0, store_mask, a[i]);
    }
  }

  __attribute__((target("avx512f"))) static void CopyOut(const float* src, int n,
      float* dst) {
    int i = 0;
    for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 63); ++i) dst[i] = src[i];
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
  }
  static void Fence() { _mm_sfence(); }
};

struct Avx2Ops {
  static const int kTile = 8;
  // 8 x 8 in AVX registers; a partial tile goes the plain way.
  __attribute__((target("avx2"))) static void Tile(const float* src, int64_t src_stride,
      int r0, int nr, int c0, int nc, float* out, int64_t out_stride) {
    if (nr < 8 || nc < 8) {
      TransposePlain(src + r0 * src_stride + c0, src_stride, nr, nc, out + r0, out_stride);
      return;
    }
    __m256 a[8], b[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm256_loadu_ps(src + (r0 + i) * src_stride + c0);
    for (int i = 0; i < 8; i += 2) {
      b[i] = _mm256_unpacklo_ps(a[i], a[i + 1]);
      b[i + 1] = _mm256_unpackhi_ps(a[i], a[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      a[i] = _mm256_shuffle_ps(b[i], b[i + 2], 0x44);
      a[i + 1] = _mm256_shuffle_ps(b[i], b[i + 2], 0xee);
      a[i + 2] = _mm256_shuffle_ps(b[i + 1], b[i + 3], 0x44);
      a[i + 3] = _mm256_shuffle_ps(b[i + 1], b[i + 3], 0xee);
    }
    for (int j = 0; j < 4; ++j) {
      b[j] = _mm256_permute2f128_ps(a[j], a[j + 4], 0x20);
      b[j + 4] = _mm256_permute2f128_ps(a[j], a[j + 4], 0x31);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + i * out_stride + r0, b[i]);
  }

  __attribute__((target("avx2"))) static void CopyOut(const float* src, int n, float* dst) {
    int i = 0;
    for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 31); ++i) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
  }
  static void Fence() { _mm_sfence(); }
};

// The transpose in tiles of Ops (above), in the order that suits the two sides.
template <typename Ops>
void TransposeTiled(const float* src, int64_t src_stride, int rows, int cols, float* dst,
    int64_t dst_stride, bool stream) {
  const int T = Ops::kTile;
  if (stream && rows <= kStageRows) {
    // dst is part of an output larger than the cache (a RoI's (channels, bins) top; an NCHW
    // gradient): column blocks outside, each block's T destination rows transposed into a
    // staging buffer in L1 and then written out whole with streaming stores, where stores
    // straight into memory not in cache would straddle lines and read each line in first.
    // Blocks of 16 columns (a 64-byte line of each source row) whatever the tile size.
    alignas(64) float stage[16 * kStageRows];
    for (int c0 = 0; c0 < cols; c0 += 16) {
      const int nc = std::min(16, cols - c0);
      for (int r0 = 0; r0 < rows; r0 += T) {
        for (int c1 = c0; c1 < c0 + nc; c1 += T) {
          Ops::Tile(src, src_stride, r0, std::min(T, rows - r0), c1,
              std::min(T, c0 + nc - c1), stage + (c1 - c0) * rows, rows);
        }
      }
      if (dst_stride == rows) {  // the block's rows are one contiguous stretch
        Ops::CopyOut(stage, nc * rows, dst + c0 * dst_stride);
      } else {
        for (int i = 0; i < nc; ++i) {
          Ops::CopyOut(stage + i * rows, rows, dst + (c0 + i) * dst_stride);
        }
      }
    }
    Ops::Fence();
    return;
  }
  // Otherwise the side whose rows lie further apart (an NCHW map's channel planes, a RoI's
  // dense top diff) is walked row by row, each of its rows in one contiguous run, and the
  // other side, the smaller stretch, is filled a tile row at a time while it is in cache.
  // Blocks of 16 x 16 whatever the tile size, so that each 64-byte line is written whole.
  const bool by_rows = src_stride == cols || src_stride > dst_stride;
  for (int outer = 0; outer < (by_rows ? rows : cols); outer += 16) {
    for (int inner = 0; inner < (by_rows ? cols : rows); inner += 16) {
      const int r0 = by_rows ? outer : inner, c0 = by_rows ? inner : outer;
      const int r_end = std::min(r0 + 16, rows), c_end = std::min(c0 + 16, cols);
      for (int r1 = r0; r1 < r_end; r1 += T) {
        for (int c1 = c0; c1 < c_end; c1 += T) {
          Ops::Tile(src, src_stride, r1, std::min(T, r_end - r1), c1, std::min(T, c_end - c1),
              dst + c1 * dst_stride, dst_stride);
        }
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

// 32-bit values (float, int) move through float registers: a transpose only copies bits.
template <typename T>
void Transpose32(const T* src, int64_t src_stride, int rows, int cols, T* dst,
    int64_t dst_stride, IsaLevel isa, bool stream) {
#if defined(ROI_X86_INTRINSICS)
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  switch (std::min(isa, Isa())) {
    case kAvx512:
      return TransposeTiled<Avx512Ops>(s, src_stride, rows, cols, d, dst_stride, stream);
    case kAvx2:
      return TransposeTiled<Avx2Ops>(s, src_stride, rows, cols, d, dst_stride, stream);
    default: break;
  }
#endif
  TransposePlain(src, src_stride, rows, cols, dst, dst_stride);
}
}  // namespace

IsaLevel Isa() {
  static const IsaLevel level = [] {
    IsaLevel best = kPlain;
#if defined(ROI_ISA_X86)
    __builtin_cpu_init();
    best = __builtin_cpu_supports("avx512f") ? kAvx512
        : (__builtin_cpu_supports("avx2") ? kAvx2 : kPlain);
#elif defined(__AVX512F__)
    best = kAvx512;
#elif defined(__AVX2__)
    best = kAvx2;
#endif
    const char* want = std::getenv("ROI_CPU_ISA");
    if (!want || !*want) return best;
    const std::string w(want);
    IsaLevel cap;
    if (w == "plain") {
      cap = kPlain;
    } else if (w == "avx2") {
      cap = kAvx2;
    } else if (w == "avx512") {
      cap = kAvx512;
    } else {
      LOG(FATAL) << "ROI_CPU_ISA=" << w << ": expected plain, avx2 or avx512";
    }
    return std::min(best, cap);
  }();
  return level;
}

void Transpose(const float* src, int64_t src_stride, int rows, int cols, float* dst,
    int64_t dst_stride, bool stream, IsaLevel isa) {
  Transpose32(src, src_stride, rows, cols, dst, dst_stride, isa, stream);
}

void Transpose(const int* src, int64_t src_stride, int rows, int cols, int* dst,
    int64_t dst_stride, bool stream, IsaLevel isa) {
  Transpose32(src, src_stride, rows, cols, dst, dst_stride, isa, stream);
}

void Transpose(const double* src, int64_t src_stride, int rows, int cols, double* dst,
    int64_t dst_stride, bool, IsaLevel) {
  TransposePlain(src, src_stride, rows, cols, dst, dst_stride);
}

template <typename Dtype>
void FromNchw(const Dtype* in, int num, int channels, int plane, Dtype* out) {
  const int tiles = (plane + kTile - 1) / kTile;
  // No streaming stores here: the copy is read right after, and written through the cache
  // it is still in L3 then (streaming it made the sampling slower than it made the copy
  // faster: FPN P3, 2 x 256 x 100 x 136, forward 27.4 -> 25.6 ms without).
  const bool parallel = static_cast<int64_t>(num) * channels * plane > kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (int t = 0; t < num * tiles; ++t) {
    const int n = t / tiles, p0 = (t % tiles) * kTile, p1 = std::min(p0 + kTile, plane);
    Transpose(in + static_cast<int64_t>(n) * channels * plane + p0, plane, channels, p1 - p0,
        out + (static_cast<int64_t>(n) * plane + p0) * channels, channels);
  }
}

template <typename Dtype>
void ToNchw(const Dtype* in, int num, int channels, int plane, Dtype* out) {
  const int tiles = (plane + kTile - 1) / kTile;
  const int64_t count = static_cast<int64_t>(num) * channels * plane;
  const bool parallel = count > kParallelWork;
  const bool stream = count * static_cast<int64_t>(sizeof(Dtype)) > kStreamBytes;
#pragma omp parallel for schedule(static) if (parallel)
  for (int t = 0; t < num * tiles; ++t) {
    const int n = t / tiles, p0 = (t % tiles) * kTile, p1 = std::min(p0 + kTile, plane);
    Transpose(in + (static_cast<int64_t>(n) * plane + p0) * channels, channels, p1 - p0,
        channels, out + static_cast<int64_t>(n) * channels * plane + p0, plane, stream);
  }
}

template void FromNchw<float>(const float*, int, int, int, float*);
template void FromNchw<double>(const double*, int, int, int, double*);
template void FromNchw<int>(const int*, int, int, int, int*);
template void ToNchw<float>(const float*, int, int, int, float*);
template void ToNchw<double>(const double*, int, int, int, double*);
template void ToNchw<int>(const int*, int, int, int, int*);

template <typename Dtype>
void Zero(int64_t count, Dtype* x) {
#pragma omp parallel for schedule(static) if (count > kParallelWork)
  for (int64_t i = 0; i < count; ++i) x[i] = 0;
}

template void Zero<float>(int64_t, float*);
template void Zero<double>(int64_t, double*);

}  // namespace channels_last
}  // namespace caffe
