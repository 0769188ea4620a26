#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "caffe/layers/channels_last.hpp"
#include "caffe/layers/roi_cpu_simd.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

// Channels per register block of the pooling loop: 4 AVX-512 registers of floats.
const int kLanes = 64;

// One bin, channels [c0, c0 + kLanes) in registers of Bytes: the running maximum and its
// pixel start at the bin's first pixel, and a pixel replaces them where it is larger (the
// first largest pixel wins), as roi_pool::max_in does. b, a: the bin's row of the tile.
template <int Bytes, typename Dtype>
inline __attribute__((always_inline)) void PoolBinVectors(const Dtype* in, int width,
    int channels, const int* r, const int* c, int c0, Dtype* __restrict__ b,
    int* __restrict__ a) {
  typedef typename cpu_simd::Simd<Dtype, Bytes>::V V;
  typedef typename cpu_simd::Simd<Dtype, Bytes>::I I;
  const int W = sizeof(V) / sizeof(Dtype), N = kLanes / W;
  const int start = r[0] * width + c[0];
  V best[N];
  I arg[N];
#pragma GCC unroll 16
  for (int v = 0; v < N; ++v) {
    best[v] = cpu_simd::LoadV<V>(in + static_cast<int64_t>(start) * channels + c0 + v * W);
    arg[v] = cpu_simd::Splat<I>(start);
  }
  for (int h = r[0]; h < r[1]; ++h) {
    for (int w = c[0]; w < c[1]; ++w) {
      const int idx = h * width + w;
      const Dtype* px = in + static_cast<int64_t>(idx) * channels + c0;
      const I at = cpu_simd::Splat<I>(idx);
#pragma GCC unroll 16
      for (int v = 0; v < N; ++v) {
        const V x = cpu_simd::LoadV<V>(px + v * W);
        const I larger = x > best[v];
        best[v] = cpu_simd::Select(larger, x, best[v]);
        arg[v] = (larger & at) | (~larger & arg[v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int v = 0; v < N; ++v) {
    cpu_simd::StoreV(b + c0 + v * W, best[v]);
    for (int j = 0; j < W; ++j) a[c0 + v * W + j] = static_cast<int>(arg[v][j]);
  }
}

// Every channel of one RoI's bins at once: roi_pool::max_in per channel (the first largest
// pixel wins), on a channels-last map. bounds: the RoI's bin bounds as Forward_cpu computes
// them; best, arg: (bins, channels), bin rows ld apart. Blocks of kLanes channels in
// registers, the remaining channels one at a time.
template <int Bytes, typename Dtype>
inline __attribute__((always_inline)) void PoolRoi(const Dtype* in, int width, int channels,
    int pooled_h, int pooled_w, const int* bounds, Dtype* __restrict__ best,
    int* __restrict__ arg, int ld) {
  const int* cols = bounds + pooled_h * 3;
  const int full = channels / kLanes * kLanes;
  for (int ph = 0; ph < pooled_h; ++ph) {
    const int* r = bounds + ph * 3;
    for (int pw = 0; pw < pooled_w; ++pw) {
      const int* c = cols + pw * 3;
      Dtype* b = best + static_cast<int64_t>(ph * pooled_w + pw) * ld;
      int* a = arg + static_cast<int64_t>(ph * pooled_w + pw) * ld;
      if (!(r[2] && c[2])) {
        std::fill(b, b + channels, Dtype(0));
        std::fill(a, a + channels, -1);
        continue;
      }
      for (int c0 = 0; c0 < full; c0 += kLanes) {
        PoolBinVectors<Bytes>(in, width, channels, r, c, c0, b, a);
      }
      const int start = r[0] * width + c[0];
      std::copy(in + static_cast<int64_t>(start) * channels + full,
          in + static_cast<int64_t>(start + 1) * channels, b + full);
      std::fill(a + full, a + channels, start);
      for (int h = r[0]; h < r[1]; ++h) {
        for (int w = c[0]; w < c[1]; ++w) {
          const int idx = h * width + w;
          const Dtype* __restrict__ px = in + static_cast<int64_t>(idx) * channels;
          for (int k = full; k < channels; ++k) {
            const bool larger = px[k] > b[k];
            b[k] = larger ? px[k] : b[k];
            a[k] = larger ? idx : a[k];
          }
        }
      }
    }
  }
}

ROI_ISA_VERSIONS(PoolRoiFloat, (const float* in, int width, int channels, int pooled_h,
    int pooled_w, const int* bounds, float* best, int* arg, int ld),
    PoolRoi<kVecBytes>(in, width, channels, pooled_h, pooled_w, bounds, best, arg, ld))
ROI_ISA_VERSIONS(PoolRoiDouble, (const double* in, int width, int channels, int pooled_h,
    int pooled_w, const int* bounds, double* best, int* arg, int ld),
    PoolRoi<kVecBytes>(in, width, channels, pooled_h, pooled_w, bounds, best, arg, ld))

// The version for this machine.
decltype(&PoolRoiFloatPlain) PoolRoiChannels(float /*type*/ tag) {
  return ROI_ISA_PICK(PoolRoiFloat);
}
decltype(&PoolRoiDoublePlain) PoolRoiChannels(double /*type*/ tag) {
  return ROI_ISA_PICK(PoolRoiDouble);
}

}  // namespace

template <typename Dtype>
void ROIPoolingLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const ROIPoolingParameter& rp = CheckRoiPoolingParam(this->layer_param_);
  pooled_h_ = rp.pooled_h();
  pooled_w_ = rp.pooled_w();
  spatial_scale_ = rp.spatial_scale();
}

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  num_rois_ = CheckRoiBottoms(this->layer_param_, bottom);
  channels_ = bottom[0]->channels();
  height_ = bottom[0]->height();
  width_ = bottom[0]->width();
  top[0]->Reshape(num_rois_, channels_, pooled_h_, pooled_w_);
  argmax_.Reshape(top[0]->shape());
}

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (num_rois_ == 0) return;
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  const Dtype* data = bottom[0]->cpu_data();
  const Dtype* rois = bottom[1]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  int* argmax = argmax_.mutable_cpu_data();
  const int plane = height_ * width_, bins = pooled_h_ * pooled_w_;
  const int channels = channels_, per_roi = pooled_h_ + pooled_w_;
  bounds_.resize(num_rois_ * per_roi * 3);
  for (int n = 0; n < num_rois_; ++n) {
    const Dtype* roi = rois + n * 5;
    int* b = &bounds_[n * per_roi * 3];
    for (int ph = 0; ph < pooled_h_; ++ph, b += 3) {
      b[2] = roi_pool::bin_range(roi[2], roi[4], spatial_scale_, height_, pooled_h_, ph,
          &b[0], &b[1]);
    }
    for (int pw = 0; pw < pooled_w_; ++pw, b += 3) {
      b[2] = roi_pool::bin_range(roi[1], roi[3], spatial_scale_, width_, pooled_w_, pw,
          &b[0], &b[1]);
    }
  }
  channels_last_.resize(bottom[0]->count());
  channels_last::FromNchw(data, bottom[0]->num(), channels, plane, channels_last_.data());
  const auto pool_roi = PoolRoiChannels(Dtype(0));
  const bool stream = top[0]->count() * sizeof(Dtype) > channels_last::kStreamBytes;
#pragma omp parallel if (top[0]->count() > channels_last::kParallelWork)
  {
    // This thread's outputs of one RoI, channels last: (bins, channels), rows ld apart.
    const int ld = channels_last::PaddedRow(channels);
    vector<Dtype> best(static_cast<int64_t>(bins) * ld);
    vector<int> arg(best.size());
#pragma omp for schedule(dynamic, 1)
    for (int n = 0; n < num_rois_; ++n) {
      const Dtype* in = channels_last_.data()
          + static_cast<int64_t>(rois[n * 5]) * plane * channels;
      pool_roi(in, width_, channels, pooled_h_, pooled_w_, &bounds_[n * per_roi * 3],
          best.data(), arg.data(), ld);
      const int64_t first = static_cast<int64_t>(n) * channels * bins;
      channels_last::Transpose(best.data(), ld, bins, channels, top_data + first, bins,
          stream);
      channels_last::Transpose(arg.data(), ld, bins, channels, argmax + first, bins, stream);
    }
  }
}

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) return;  // no gradient for the RoI coordinates
  Dtype* diff = bottom[0]->mutable_cpu_diff();
  caffe_set(bottom[0]->count(), Dtype(0), diff);
  if (num_rois_ == 0) return;
  const Dtype* rois = bottom[1]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  const int* argmax = argmax_.cpu_data();
  const int plane = height_ * width_, bins = pooled_h_ * pooled_w_;
  const int channels = channels_;
  // One channel per thread: no two threads write the same gradient plane.
#pragma omp parallel for if (top[0]->count() > channels_last::kParallelWork)
  for (int c = 0; c < channels; ++c) {
    for (int n = 0; n < num_rois_; ++n) {
      const int nc = n * channels + c;
      Dtype* out = diff + (static_cast<int>(rois[n * 5]) * channels + c) * plane;
      for (int b = 0; b < bins; ++b) {
        const int a = argmax[nc * bins + b];
        if (a >= 0) out[a] += top_diff[nc * bins + b];
      }
    }
  }
}

#if defined(CPU_ONLY)
STUB_GPU(ROIPoolingLayer);
#elif defined(ROI_LAYERS_CPU_ONLY)
ROI_LAYER_GPU_RUNS_CPU(ROIPoolingLayer);
#endif

INSTANTIATE_CLASS(ROIPoolingLayer);
REGISTER_LAYER_CLASS(ROIPooling);

}  // namespace caffe
