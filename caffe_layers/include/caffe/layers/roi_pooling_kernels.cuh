// The RoI max pooling kernels and ROIPoolingLayer's device passes, written once for nvcc and
// for the host emulation (roi_device.cuh): one thread per output element; backward by atomic
// adds at each output's argmax. No launch has a count of 0 or one past kMaxKernelCount.
#ifndef CAFFE_ROI_POOLING_KERNELS_CUH_
#define CAFFE_ROI_POOLING_KERNELS_CUH_

#include <vector>

#include "caffe/layers/roi_device.cuh"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/roi_pooling_geometry.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"

namespace caffe {

namespace roi_pooling_kernels {

template <typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) Forward(
    const int nthreads, const Dtype* data, const Dtype* rois, const Dtype scale,
    const int channels, const int height, const int width, const int pooled_h,
    const int pooled_w, Dtype* top, int* argmax) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int pw = index % pooled_w;
    const int ph = (index / pooled_w) % pooled_h;
    const int c = (index / pooled_w / pooled_h) % channels;
    const Dtype* roi = rois + (index / pooled_w / pooled_h / channels) * 5;
    const Dtype* plane =
        data + (static_cast<int>(roi[0]) * channels + c) * height * width;
    top[index] = roi_pool::pool_bin(plane, roi, scale, height, width, pooled_h, pooled_w,
        ph, pw, &argmax[index]);
  }
}

template <typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) Backward(
    const int nthreads, const Dtype* top_diff, const int* argmax, const Dtype* rois,
    const int channels, const int plane, const int bins, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int a = argmax[index];
    if (a < 0) continue;
    const int nc = index / bins;
    const int batch = static_cast<int>(rois[(nc / channels) * 5]);
    roi_atomic_add(top_diff[index],
        bottom_diff + (batch * channels + nc % channels) * plane + a);
  }
}

}  // namespace roi_pooling_kernels

template <typename Dtype>
template <typename Device>
void ROIPoolingLayer<Dtype>::ForwardOn(const Device&, const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) return;  // no RoIs (or no channels): launch nothing
  CheckRoiKernelCount(this->layer_param_, count, "top");
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  Device::launch(roi_pooling_kernels::Forward<Dtype>, count, count,
      Device::data(*bottom[0]), Device::data(*bottom[1]), spatial_scale_, channels_, height_,
      width_, pooled_h_, pooled_w_, Device::mutable_data(top[0]),
      Device::mutable_data(&argmax_));
}

template <typename Dtype>
template <typename Device>
void ROIPoolingLayer<Dtype>::BackwardOn(const Device&, const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] || bottom[0]->count() == 0) return;  // nothing to write
  Dtype* diff = Device::mutable_diff(bottom[0]);
  Device::set(bottom[0]->count(), Dtype(0), diff);
  const int count = top[0]->count();
  if (count == 0) return;
  CheckRoiKernelCount(this->layer_param_, count, "top");
  Device::launch(roi_pooling_kernels::Backward<Dtype>, count, count, Device::diff(*top[0]),
      Device::data(argmax_), Device::data(*bottom[1]), channels_, height_ * width_,
      pooled_h_ * pooled_w_, diff);
}

}  // namespace caffe

#endif  // CAFFE_ROI_POOLING_KERNELS_CUH_
