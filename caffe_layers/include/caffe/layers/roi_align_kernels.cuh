// The RoIAlign kernels and the device passes of ROIAlign and PyramidROIAlign, written once for
// nvcc and for the host emulation (roi_device.cuh). One thread per output element
// (CUDA_KERNEL_LOOP), geometry and interpolation from roi_align_geometry.hpp (its
// floating-point and bounds policy applies), backward by atomic adds. Each RoI's feature map
// comes from a Maps functor: OneMap (ROIAlign) or LevelMaps (PyramidROIAlign: one launch over
// all RoIs and levels, each RoI reading the level the host chose for it). No launch has a
// count of 0 or one past kMaxKernelCount.
#ifndef CAFFE_ROI_ALIGN_KERNELS_CUH_
#define CAFFE_ROI_ALIGN_KERNELS_CUH_

#include <vector>

#include "caffe/layers/pyramid_roi_align_layer.hpp"
#include "caffe/layers/roi_align_geometry.hpp"
#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_device.cuh"
#include "caffe/layers/roi_layer_common.hpp"

namespace caffe {

namespace roi_align_kernels {

using roi_align::Box;
using roi_align::MapRef;
using roi_align::Params;

// Computes the taps of a bin's sample rows (or columns) on the fly.
template <typename Dtype>
struct TapMaker {
  Dtype start, bin;
  int pooled_index, grid, size, bi_type, alignment;
  __device__ roi_align::Taps<Dtype> operator()(int i) const {
    return roi_align::sample_taps(start, bin, pooled_index, i, grid, size, bi_type,
        alignment);
  }
};

template <typename Dtype>
struct AtomicAdd {
  __device__ void operator()(Dtype* a, Dtype v) const { roi_atomic_add(v, a); }
};

// Output element `index` of (R, C, pooled_h, pooled_w): its RoI's map, box, plane offset in
// that map, and the tap makers of its sample rows and columns.
template <typename Dtype>
struct Output {
  MapRef<Dtype> map;
  Box<Dtype> box;
  int offset;
  TapMaker<Dtype> ty, tx;
};

template <typename Dtype, typename Maps>
__device__ Output<Dtype> locate(int index, const Dtype* rois, const Params<Dtype>& common,
    int channels, const Maps& maps) {
  const int pw = index % common.pooled_w;
  const int ph = (index / common.pooled_w) % common.pooled_h;
  const int c = (index / common.pooled_w / common.pooled_h) % channels;
  const int n = index / common.pooled_w / common.pooled_h / channels;
  const Dtype* roi = rois + n * 5;
  Output<Dtype> o;
  o.map = maps(n);
  const Params<Dtype> p = roi_align::on_map(common, o.map);
  o.box = roi_align::roi_box(roi, p);
  o.offset = (static_cast<int>(roi[0]) * channels + c) * p.height * p.width;
  const TapMaker<Dtype> y = {o.box.start_h, o.box.bin_h, ph, o.box.grid_h, p.height,
      p.bi_type, p.alignment};
  const TapMaker<Dtype> x = {o.box.start_w, o.box.bin_w, pw, o.box.grid_w, p.width,
      p.bi_type, p.alignment};
  o.ty = y;
  o.tx = x;
  return o;
}

template <int K, typename Dtype, typename Maps>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) Forward(const int nthreads,
    const Dtype* rois, const Params<Dtype> p, const int channels, const Maps maps,
    Dtype* top, int* argmax) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const Output<Dtype> o = locate(index, rois, p, channels, maps);
    int am = -1;
    top[index] = roi_align::pool_bin<K>(o.map.data + o.offset, o.map.width, o.box.grid_h,
        o.box.grid_w, p.is_max, o.ty, o.tx, &am);
    if (p.is_max) argmax[index] = am;
  }
}

template <int K, typename Dtype, typename Maps>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) Backward(const int nthreads,
    const Dtype* top_diff, const int* argmax, const Dtype* rois, const Params<Dtype> p,
    const int channels, const Maps maps) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const Output<Dtype> o = locate(index, rois, p, channels, maps);
    roi_align::scatter_bin<K>(o.map.diff + o.offset, o.map.width, o.box.grid_h,
        o.box.grid_w, p.is_max, p.is_max ? argmax[index] : -1, top_diff[index], o.ty, o.tx,
        AtomicAdd<Dtype>());
  }
}

// The launches of one pass over `count` outputs (count > 0), K from bi_type.
template <typename Device, typename Dtype, typename Maps>
void LaunchForward(int count, const Dtype* rois, const Params<Dtype>& p, int channels,
    const Maps& maps, Dtype* top, int* argmax) {
  roi_align::with_tap_count(p.bi_type, [&](auto taps) {
    Device::launch(Forward<decltype(taps)::value, Dtype, Maps>, count, count, rois, p,
        channels, maps, top, argmax);
  });
}

template <typename Device, typename Dtype, typename Maps>
void LaunchBackward(int count, const Dtype* top_diff, const int* argmax, const Dtype* rois,
    const Params<Dtype>& p, int channels, const Maps& maps) {
  roi_align::with_tap_count(p.bi_type, [&](auto taps) {
    Device::launch(Backward<decltype(taps)::value, Dtype, Maps>, count, count, top_diff,
        argmax, rois, p, channels, maps);
  });
}

}  // namespace roi_align_kernels

template <typename Dtype>
template <typename Device>
void ROIAlignLayer<Dtype>::ForwardOn(const Device&, const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) return;  // no RoIs (or no channels): launch nothing
  CheckRoiKernelCount(this->layer_param_, count, "top");
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  roi_align::OneMap<Dtype> map = {
      roi_align::MapOfBlob(*bottom[0], params_.spatial_scale)};
  map.map.data = Device::data(*bottom[0]);
  roi_align_kernels::LaunchForward<Device>(count, Device::data(*bottom[1]), params_,
      channels_, map, Device::mutable_data(top[0]),
      params_.is_max ? Device::mutable_data(&argmax_) : NULL);
}

template <typename Dtype>
template <typename Device>
void ROIAlignLayer<Dtype>::BackwardOn(const Device&, const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] || bottom[0]->count() == 0) return;  // nothing to write
  roi_align::OneMap<Dtype> map = {
      roi_align::MapOfBlob(*bottom[0], params_.spatial_scale)};
  map.map.diff = Device::mutable_diff(bottom[0]);
  Device::set(bottom[0]->count(), Dtype(0), map.map.diff);
  const int count = top[0]->count();
  if (count == 0) return;
  CheckRoiKernelCount(this->layer_param_, count, "top");
  roi_align_kernels::LaunchBackward<Device>(count, Device::diff(*top[0]),
      params_.is_max ? Device::data(argmax_) : NULL, Device::data(*bottom[1]), params_,
      channels_, map);
}

template <typename Dtype>
template <typename Device>
void PyramidROIAlignLayer<Dtype>::ForwardOn(const Device&, const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) return;  // no RoIs (or no channels): launch nothing
  CheckRoiKernelCount(this->layer_param_, count, "top");
  AssignLevels(bottom);
  vector<roi_align::MapRef<Dtype> > maps = Maps(bottom);
  for (int l = 0; l < num_levels_; ++l) maps[l].data = Device::data(*bottom[l + 1]);
  const roi_align::LevelMaps<Dtype> table = {UploadMaps(Device(), maps),
      Device::data(levels_)};
  roi_align_kernels::LaunchForward<Device>(count, Device::data(*bottom[0]), params_,
      channels_, table, Device::mutable_data(top[0]),
      params_.is_max ? Device::mutable_data(&argmax_) : NULL);
}

template <typename Dtype>
template <typename Device>
void PyramidROIAlignLayer<Dtype>::BackwardOn(const Device&, const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!AnyFeatureGradient(propagate_down)) return;
  vector<roi_align::MapRef<Dtype> > maps = Maps(bottom);
  for (int l = 0; l < num_levels_; ++l) {
    if (bottom[l + 1]->count() == 0) continue;
    maps[l].diff = Device::mutable_diff(bottom[l + 1]);
    Device::set(bottom[l + 1]->count(), Dtype(0), maps[l].diff);
  }
  const int count = top[0]->count();
  if (count == 0) return;
  CheckRoiKernelCount(this->layer_param_, count, "top");
  const roi_align::LevelMaps<Dtype> table = {UploadMaps(Device(), maps),
      Device::data(levels_)};
  roi_align_kernels::LaunchBackward<Device>(count, Device::diff(*top[0]),
      params_.is_max ? Device::data(argmax_) : NULL, Device::data(*bottom[0]), params_,
      channels_, table);
}

// The level table where Device's kernels read it (for CUDA, a copy in device memory).
template <typename Dtype>
template <typename Device>
const roi_align::MapRef<Dtype>* PyramidROIAlignLayer<Dtype>::UploadMaps(const Device&,
    const vector<roi_align::MapRef<Dtype> >& maps) {
  roi_align::MapRef<Dtype>* host =
      static_cast<roi_align::MapRef<Dtype>*>(gpu_maps_->mutable_cpu_data());
  for (int l = 0; l < num_levels_; ++l) host[l] = maps[l];
  return static_cast<const roi_align::MapRef<Dtype>*>(Device::data(gpu_maps_.get()));
}

}  // namespace caffe

#endif  // CAFFE_ROI_ALIGN_KERNELS_CUH_
