// RoIAlign geometry and interpolation: the one definition shared by the CPU and CUDA code,
// forward and backward. Every function here is __host__ __device__ when compiled by nvcc.
//
// Definitions (ROIPoolingParameter in caffe.proto; s = spatial_scale, H x W the feature map):
//  * pad_ratio > 0: p = pad_ratio * (x2 - x1 + 1); x1 <- max(x1 - p, 0);
//    x2 <- min(x2 + p, round(W / s) - 1); likewise y with H. (Image coordinates.)
//  * alignment CAFFE:      start = x1*s,       size = max(x2*s - x1*s + 1, 1)
//              DETECTRON:  start = x1*s,       size = max(x2*s - x1*s, 1)
//              HALF_PIXEL: start = x1*s - 0.5, size = x2*s - x1*s
//              BIN_CORNERS: start = x1*s,    size = max(x2*s - x1*s + 1, 0)
//  * bin = size / pooled; grid = sampling_ratio if > 0, else ceil(bin) (adaptive), capped at
//    kMaxGrid so that absurd boxes cannot overflow an int or loop for ever.
//  * sample (iy, ix) of bin (ph, pw): y = start_h + ph*bin_h + (iy + 0.5) * bin_h / grid_h.
//  * a sample with y < -1, y > H, x < -1 or x > W contributes 0; otherwise the coordinate is
//    clamped to [0, size - 1] and interpolated, the weights staying whole at the last row/col.
//  * bilinear: 2 taps per axis; bicubic: 4 taps, cubic convolution with a = -1, neighbours
//    clamped to the map.
// Two alignments sample elsewhere (bilinear only):
//  * BIN_CORNERS (faster-rcnn.pytorch's RoIAlignAvg / RoIAlignMax): the samples sit at the bin's
//    corners, y = start_h + (ph + iy / (grid_h - 1)) * bin_h (grid 2: iy = 0, 1; grid 1: the
//    top-left corner only). A sample with y < 0, y >= H (x likewise) is 0; otherwise the low
//    tap is min(floor(y), H - 2), so [H - 1, H) extrapolates linearly from rows H - 2, H - 1
//    (a map of height 1 uses its one row).
//  * CROP_AND_RESIZE (tf.image.crop_and_resize, bilinear, extrapolation_value 0): one sample
//    per output, y = y1*s + ph * (y2*s - y1*s) / (pooled_h - 1) (pooled_h = 1: the centre,
//    (y1*s + y2*s) / 2). A sample outside [0, H - 1] is 0; sampling_ratio and pool do not
//    apply (grid 1).
//
// Floating-point policy (CPU and GPU do the same arithmetic):
//  * Every function here is one sequence of IEEE operations, evaluated in the same order on
//    both sides. nvcc compiles our .cu files with --fmad=false (Makefile.config: no fused
//    multiply-adds; division is IEEE-rounded, no --use_fast_math) and the host with
//    -ffp-contract=off, so sample coordinates, taps, interpolated values, forward outputs and
//    MAX argmaxes agree bit for bit. A MAX tie (two samples with the same value, e.g. both
//    clamped to the last row) is resolved identically: the first sample wins on both sides.
//  * Backward: each gradient term (top diff x tap weights) is also bit-identical, but the GPU
//    adds the terms of one bottom element with atomics, in no fixed order, while the CPU adds
//    them in RoI / bin order. For n terms x_i, each order is within (n - 1) u sum |x_i| of the
//    exact sum (u = 2^-24 float, 2^-53 double), so CPU and GPU may differ by up to
//    2 (n - 1) u sum |x_i| per element, relative to the terms' magnitude, not to the result
//    (which may cancel to ~0). An element with one term is exact. test_roi_layers_gpu.cpp
//    checks exactly this.
// Bounds: sampling_ratio <= kMaxGrid (checked at setup: an error names the layer and value),
// adaptive grids are capped at kMaxGrid, so grid_h * grid_w <= 2^20 never overflows an int.
// Kernel loops (CUDA_KERNEL_LOOP, int index plus a grid stride) are safe for counts up to
// kMaxKernelCount (roi_layer_common.hpp, about 2^30); larger tops or bottoms are a clear error
// before any launch, and a count of 0 launches nothing.
#ifndef CAFFE_ROI_ALIGN_GEOMETRY_HPP_
#define CAFFE_ROI_ALIGN_GEOMETRY_HPP_

#include <cmath>

#include "caffe/layers/roi_host_device.hpp"

namespace caffe {
namespace roi_align {

enum Interp { kBilinear = 0, kBicubic = 1 };
enum Alignment {
  kCaffe = 0, kDetectron = 1, kHalfPixel = 2, kBinCorners = 3, kCropAndResize = 4
};
// Largest number of samples per bin along one axis: the cap of adaptive sampling and the
// largest sampling_ratio accepted.
const int kMaxGrid = 1024;

// What the geometry needs to know about the layer and its bottom: plain data, passed to
// kernels by value.
template <typename Dtype>
struct Params {
  int height, width;          // feature map
  int pooled_h, pooled_w;
  Dtype spatial_scale;
  Dtype pad_ratio;
  int bi_type;                // Interp
  int alignment;              // Alignment
  int sampling_ratio;         // > 0: fixed grid; 0: adaptive (-1 is resolved at setup)
  bool is_max;                // pool = MAX
};

// One feature map that RoIs are pooled from: its data (forward) or diff (backward), its size
// and scale. ROIAlign has one; PyramidROIAlign one per level.
template <typename Dtype>
struct MapRef {
  const Dtype* data;
  Dtype* diff;
  int height, width;
  Dtype spatial_scale;
};

// p with the size and scale of map m.
template <typename Dtype>
ROI_HD Params<Dtype> on_map(Params<Dtype> p, const MapRef<Dtype>& m) {
  p.height = m.height;
  p.width = m.width;
  p.spatial_scale = m.spatial_scale;
  return p;
}

// The map of RoI n: ROIAlign's one bottom for every RoI...
template <typename Dtype>
struct OneMap {
  MapRef<Dtype> map;
  ROI_HD const MapRef<Dtype>& operator()(int) const { return map; }
};

// ... or, for PyramidROIAlign, the level chosen for it (maps and level in host memory for the
// CPU code, device memory for the kernels).
template <typename Dtype>
struct LevelMaps {
  const MapRef<Dtype>* maps;
  const int* level;
  ROI_HD const MapRef<Dtype>& operator()(int n) const { return maps[level[n]]; }
};

// One RoI on the feature map. grid_h = grid_w = 0 marks a RoI with no samples (non-finite
// coordinates): every output of it is 0 and it receives no gradient.
template <typename Dtype>
struct Box {
  Dtype start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;
};

template <typename T>
ROI_HD bool finite(T v) { return v == v && v - v == 0; }

template <typename Dtype>
ROI_HD int grid_size(Dtype bin, int sampling_ratio) {
  if (sampling_ratio > 0) return sampling_ratio;
  const Dtype g = ceil(bin);
  return g <= 0 ? 0 : (g >= kMaxGrid ? kMaxGrid : static_cast<int>(g));
}

// roi: [batch, x1, y1, x2, y2] in image coordinates.
template <typename Dtype>
ROI_HD Box<Dtype> roi_box(const Dtype* roi, const Params<Dtype>& p) {
  Dtype x1 = roi[1], y1 = roi[2], x2 = roi[3], y2 = roi[4];
  const Dtype s = p.spatial_scale;
  if (p.pad_ratio > 0) {
    const Dtype pad_w = p.pad_ratio * (x2 - x1 + 1);
    const Dtype pad_h = p.pad_ratio * (y2 - y1 + 1);
    const Dtype max_x = round(p.width / s) - 1, max_y = round(p.height / s) - 1;
    x1 = x1 - pad_w > 0 ? x1 - pad_w : 0;
    y1 = y1 - pad_h > 0 ? y1 - pad_h : 0;
    x2 = x2 + pad_w < max_x ? x2 + pad_w : max_x;
    y2 = y2 + pad_h < max_y ? y2 + pad_h : max_y;
  }
  Box<Dtype> b;
  b.start_w = x1 * s;
  b.start_h = y1 * s;
  Dtype roi_w = x2 * s - b.start_w, roi_h = y2 * s - b.start_h;
  if (p.alignment == kCaffe || p.alignment == kBinCorners) {
    roi_w += 1;
    roi_h += 1;
  }
  if (p.alignment == kHalfPixel) {
    b.start_w -= Dtype(0.5);
    b.start_h -= Dtype(0.5);
  } else if (p.alignment == kBinCorners) {
    roi_w = roi_w > 0 ? roi_w : 0;
    roi_h = roi_h > 0 ? roi_h : 0;
  } else if (p.alignment != kCropAndResize) {
    roi_w = roi_w > 1 ? roi_w : 1;
    roi_h = roi_h > 1 ? roi_h : 1;
  }
  if (p.alignment == kCropAndResize) {
    // Samples from corner to corner: pooled - 1 steps, or the centre alone.
    if (p.pooled_w == 1) b.start_w = Dtype(0.5) * (b.start_w + x2 * s);
    if (p.pooled_h == 1) b.start_h = Dtype(0.5) * (b.start_h + y2 * s);
    b.bin_w = p.pooled_w > 1 ? roi_w / (p.pooled_w - 1) : 0;
    b.bin_h = p.pooled_h > 1 ? roi_h / (p.pooled_h - 1) : 0;
  } else {
    b.bin_w = roi_w / p.pooled_w;
    b.bin_h = roi_h / p.pooled_h;
  }
  if (!(finite(b.start_w) && finite(b.start_h) && finite(b.bin_w) &&
        finite(b.bin_h))) {
    b.start_w = b.start_h = b.bin_w = b.bin_h = 0;
    b.grid_h = b.grid_w = 0;
    return b;
  }
  if (p.alignment == kCropAndResize) {
    b.grid_h = b.grid_w = 1;
  } else {
    b.grid_h = grid_size(b.bin_h, p.sampling_ratio);
    b.grid_w = grid_size(b.bin_w, p.sampling_ratio);
  }
  return b;
}

// Whether the alignment puts its samples on the bins' corners (grid > 1: spread evenly from
// one corner to the next) rather than at the centres of a grid_h x grid_w split of the bin.
ROI_HD bool corner_samples(int alignment) {
  return alignment == kBinCorners || alignment == kCropAndResize;
}

template <typename Dtype>
ROI_HD Dtype sample_coord(Dtype start, Dtype bin, int pooled_index, int sample,
    int grid, int alignment) {
  if (corner_samples(alignment)) {
    return grid > 1 ? start + (pooled_index + Dtype(sample) / (grid - 1)) * bin
        : start + pooled_index * bin;
  }
  return start + pooled_index * bin + (sample + Dtype(0.5)) * bin / grid;
}

// The taps of one sample along one axis: indices into the map and their weights, and whether
// the sample lies inside [-1, size] at all. Scalars, not arrays, so that GPU code keeps them
// in registers.
template <typename Dtype>
struct Taps {
  int i0, i1, i2, i3;
  Dtype w0, w1, w2, w3;
  bool inside;
  ROI_HD int index(int k) const {
    return k == 0 ? i0 : (k == 1 ? i1 : (k == 2 ? i2 : i3));
  }
  ROI_HD Dtype weight(int k) const {
    return k == 0 ? w0 : (k == 1 ? w1 : (k == 2 ? w2 : w3));
  }
};

// Cubic convolution kernel with a = -1.
template <typename Dtype>
ROI_HD Dtype cubic_weight(Dtype t) {
  t = t < 0 ? -t : t;
  if (t < 1) return 1 - 2 * t * t + t * t * t;
  if (t < 2) return 4 - 8 * t + 5 * t * t - t * t * t;
  return 0;
}

ROI_HD int clamp_index(int i, int size) {
  return i < 0 ? 0 : (i > size - 1 ? size - 1 : i);
}

// Bilinear taps (lo, hi) with weights (1 - f, f); the third and fourth taps repeat hi with
// weight 0, so that the bicubic loop over 4 taps gives the same value.
template <typename Dtype>
ROI_HD void set_linear(Taps<Dtype>* t, int lo, int hi, Dtype f) {
  t->i0 = lo;
  t->i1 = t->i2 = t->i3 = hi;
  t->w0 = 1 - f;
  t->w1 = f;
  t->w2 = t->w3 = 0;
}

// The taps of coordinate v on an axis of `size` pixels. A sample outside the alignment's
// valid range ([-1, size]; BIN_CORNERS [0, size); CROP_AND_RESIZE [0, size - 1]) contributes
// nothing: inside = false, zero weights. NaN is outside.
template <typename Dtype>
ROI_HD Taps<Dtype> make_taps(Dtype v, int size, int bi_type, int alignment) {
  Taps<Dtype> t;
  if (alignment == kBinCorners) {
    t.inside = v >= 0 && v < size;
  } else if (alignment == kCropAndResize) {
    t.inside = v >= 0 && v <= size - 1;
  } else {
    t.inside = v >= -1 && v <= size;
  }
  if (!t.inside) {
    t.i0 = t.i1 = t.i2 = t.i3 = 0;
    t.w0 = t.w1 = t.w2 = t.w3 = 0;
    return t;
  }
  if (alignment == kBinCorners) {
    // Low tap at most size - 2: the last row extrapolates (f up to 2); one row: its value.
    if (size == 1) {
      set_linear(&t, 0, 0, Dtype(0));
      return t;
    }
    int lo = static_cast<int>(v);
    lo = lo < size - 2 ? lo : size - 2;
    set_linear(&t, lo, lo + 1, v - lo);
    return t;
  }
  if (alignment == kCropAndResize) {
    const int lo = static_cast<int>(v);
    set_linear(&t, lo, lo < size - 1 ? lo + 1 : lo, v - lo);
    return t;
  }
  v = v < 0 ? 0 : v;
  int lo = static_cast<int>(v);
  if (lo >= size - 1) {
    lo = size - 1;
    v = static_cast<Dtype>(lo);
  }
  const Dtype f = v - lo;
  if (bi_type == kBicubic) {
    t.i0 = clamp_index(lo - 1, size);
    t.i1 = lo;
    t.i2 = clamp_index(lo + 1, size);
    t.i3 = clamp_index(lo + 2, size);
    t.w0 = cubic_weight(1 + f);
    t.w1 = cubic_weight(f);
    t.w2 = cubic_weight(1 - f);
    t.w3 = cubic_weight(2 - f);
  } else {
    set_linear(&t, lo, clamp_index(lo + 1, size), f);
  }
  return t;
}

// The taps of sample `sample` of bin `pooled_index` along one axis of a RoI: (start, bin,
// grid) from its Box, size the map's height or width.
template <typename Dtype>
ROI_HD Taps<Dtype> sample_taps(Dtype start, Dtype bin, int pooled_index, int sample, int grid,
    int size, int bi_type, int alignment) {
  return make_taps(sample_coord(start, bin, pooled_index, sample, grid, alignment), size,
      bi_type, alignment);
}

// The interpolation type as a compile-time number of taps per axis: TapCount<2> bilinear,
// TapCount<4> bicubic.
template <int K>
struct TapCount {
  static const int value = K;
};

// Calls f(TapCount<K>()) with K = 4 for bicubic, 2 for bilinear: the one place where bi_type
// becomes the template argument K of interpolate / pool_bin / scatter_bin and of the kernels
// that call them. Host code; f is typically a generic lambda run once per layer pass.
template <typename F>
inline void with_tap_count(int bi_type, const F& f) {
  if (bi_type == kBicubic) {
    f(TapCount<4>());
  } else {
    f(TapCount<2>());
  }
}

// Value at (ty, tx) of one H x W plane; K = 2 (bilinear) or 4 (bicubic) taps per axis.
template <int K, typename Dtype>
ROI_HD Dtype interpolate(const Dtype* plane, int width, const Taps<Dtype>& ty,
    const Taps<Dtype>& tx) {
  Dtype v = 0;
ROI_UNROLL
  for (int k = 0; k < K; ++k) {
    const Dtype* row = plane + ty.index(k) * width;
    Dtype r = 0;
ROI_UNROLL
    for (int l = 0; l < K; ++l) r += tx.weight(l) * row[tx.index(l)];
    v += ty.weight(k) * r;
  }
  return v;
}

// The transpose of interpolate: adds g times each tap's weight into plane_diff through add(),
// which is a plain += on the CPU and an atomic add on the GPU.
template <int K, typename Dtype, typename Add>
ROI_HD void scatter(Dtype* plane_diff, int width, const Taps<Dtype>& ty,
    const Taps<Dtype>& tx, Dtype g, Add add) {
ROI_UNROLL
  for (int k = 0; k < K; ++k) {
    Dtype* row = plane_diff + ty.index(k) * width;
    const Dtype gk = g * ty.weight(k);
ROI_UNROLL
    for (int l = 0; l < K; ++l) add(row + tx.index(l), gk * tx.weight(l));
  }
}

// Pools one bin. taps_y(iy) / taps_x(ix) give the taps of a sample row / column (a reference
// into a table on the CPU, a value computed on the spot on the GPU); a sample outside the map
// has value 0. MAX keeps the first largest
// sample, *argmax = iy * grid_w + ix (-1 when the bin has no samples); AVE divides the sum by
// max(grid_h * grid_w, 1).
template <int K, typename Dtype, typename TapsY, typename TapsX>
ROI_HD Dtype pool_bin(const Dtype* plane, int width, int grid_h, int grid_w,
    bool is_max, TapsY taps_y, TapsX taps_x, int* argmax) {
  Dtype acc = 0;
  int best = -1;
  for (int iy = 0; iy < grid_h; ++iy) {
    const Taps<Dtype>& ty = taps_y(iy);
    for (int ix = 0; ix < grid_w; ++ix) {
      const Taps<Dtype>& tx = taps_x(ix);
      const Dtype v = (ty.inside && tx.inside) ? interpolate<K>(plane, width, ty, tx) : 0;
      if (!is_max) {
        acc += v;
      } else {
        const bool take = best < 0 || v > acc;  // the first largest sample wins
        acc = take ? v : acc;
        best = take ? iy * grid_w + ix : best;
      }
    }
  }
  if (is_max) {
    *argmax = best;
    return acc;
  }
  const int count = grid_h * grid_w;
  return acc / (count > 1 ? count : 1);
}

// The gradient of pool_bin: g is the top diff of the bin.
template <int K, typename Dtype, typename TapsY, typename TapsX, typename Add>
ROI_HD void scatter_bin(Dtype* plane_diff, int width, int grid_h, int grid_w,
    bool is_max, int argmax, Dtype g, TapsY taps_y, TapsX taps_x, Add add) {
  if (is_max) {
    if (argmax < 0) return;
    const Taps<Dtype>& ty = taps_y(argmax / grid_w);
    const Taps<Dtype>& tx = taps_x(argmax % grid_w);
    if (ty.inside && tx.inside) scatter<K>(plane_diff, width, ty, tx, g, add);
    return;
  }
  const int count = grid_h * grid_w;
  g /= (count > 1 ? count : 1);
  for (int iy = 0; iy < grid_h; ++iy) {
    const Taps<Dtype>& ty = taps_y(iy);
    if (!ty.inside) continue;
    for (int ix = 0; ix < grid_w; ++ix) {
      const Taps<Dtype>& tx = taps_x(ix);
      if (tx.inside) scatter<K>(plane_diff, width, ty, tx, g, add);
    }
  }
}

}  // namespace roi_align
}  // namespace caffe

#endif  // CAFFE_ROI_ALIGN_GEOMETRY_HPP_
