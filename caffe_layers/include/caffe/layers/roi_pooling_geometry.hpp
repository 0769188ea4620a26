// Fast R-CNN RoI max pooling's bin geometry: the one definition shared by the CPU and CUDA
// code of ROIPoolingLayer, forward and backward (ROI_HD: __host__ __device__ under nvcc).
#ifndef CAFFE_ROI_POOLING_GEOMETRY_HPP_
#define CAFFE_ROI_POOLING_GEOMETRY_HPP_

#include <cmath>

#include "caffe/layers/roi_host_device.hpp"

namespace caffe {
namespace roi_pool {

// Scaled RoI coordinates are clamped to +-kMaxCoord before rounding to int: far beyond any
// feature map, and safe from integer overflow.
const float kMaxCoord = 1e7f;

// A RoI corner on the feature map: v * scale rounded half away from zero, clamped to
// +-kMaxCoord; *ok becomes false for NaN or infinite input.
template <typename Dtype>
ROI_HD int scaled_corner(Dtype v, Dtype scale, bool* ok) {
  v *= scale;
  if (!(v == v && v - v == 0)) {
    *ok = false;
    return 0;
  }
  return static_cast<int>(round(v < -kMaxCoord ? -kMaxCoord : (v > kMaxCoord ? kMaxCoord : v)));
}

// Fast R-CNN's bin `index` along one axis of a RoI whose corners are lo and hi (image
// coordinates): corners times scale, rounded half away from zero; size max(end - start + 1, 1);
// bin edges floor / ceil, clipped to [0, size]. Returns false for an empty bin or a
// non-finite corner.
template <typename Dtype>
ROI_HD bool bin_range(Dtype lo, Dtype hi, Dtype scale, int size, int pooled, int index,
    int* start, int* end) {
  bool ok = true;
  const int s = scaled_corner(lo, scale, &ok), e = scaled_corner(hi, scale, &ok);
  const int len = e - s + 1 > 1 ? e - s + 1 : 1;
  const Dtype bin = static_cast<Dtype>(len) / pooled;
  const int a = static_cast<int>(floor(index * bin)) + s;
  const int b = static_cast<int>(ceil((index + 1) * bin)) + s;
  *start = a < 0 ? 0 : (a > size ? size : a);
  *end = b < 0 ? 0 : (b > size ? size : b);
  return ok && *end > *start;
}

// Max over rows [hs, he) and columns [ws, we) of a plane; *argmax = h * width + w, or -1
// (and 0 returned) when the bin is empty.
template <typename Dtype>
ROI_HD Dtype max_in(const Dtype* plane, int width, bool nonempty, int hs, int he, int ws,
    int we, int* argmax) {
  if (!nonempty) {
    *argmax = -1;
    return 0;
  }
  Dtype best = plane[hs * width + ws];
  int arg = hs * width + ws;
  for (int h = hs; h < he; ++h) {
    const Dtype* row = plane + h * width;
    for (int w = ws; w < we; ++w) {
      // Branch-free: the first largest wins, arg stays in a register.
      const bool larger = row[w] > best;
      best = larger ? row[w] : best;
      arg = larger ? h * width + w : arg;
    }
  }
  *argmax = arg;
  return best;
}

// Max over bin (ph, pw) of one RoI [batch, x1, y1, x2, y2] on a plane (the GPU path; the
// CPU path computes the ranges once per RoI with bin_range and calls max_in).
template <typename Dtype>
ROI_HD Dtype pool_bin(const Dtype* plane, const Dtype* roi, Dtype scale, int height,
    int width, int pooled_h, int pooled_w, int ph, int pw, int* argmax) {
  int hs, he, ws, we;
  const bool in_h = bin_range(roi[2], roi[4], scale, height, pooled_h, ph, &hs, &he);
  const bool in_w = bin_range(roi[1], roi[3], scale, width, pooled_w, pw, &ws, &we);
  return max_in(plane, width, in_h && in_w, hs, he, ws, we, argmax);
}

}  // namespace roi_pool
}  // namespace caffe

#endif  // CAFFE_ROI_POOLING_GEOMETRY_HPP_
