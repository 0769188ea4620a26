// CUDA RoI max pooling: one thread per output element; backward by atomic adds at each
// output's argmax. Compiled to nothing under ROI_LAYERS_CPU_ONLY. No launch has a count of 0 or
// one past kMaxKernelCount (roi_layer_common.hpp).
#ifndef ROI_LAYERS_CPU_ONLY

#include <vector>

#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"
#include "caffe/util/gpu_util.cuh"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

template <typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) ROIPoolForward(
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
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) ROIPoolBackward(
    const int nthreads, const Dtype* top_diff, const int* argmax, const Dtype* rois,
    const int channels, const int plane, const int bins, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int a = argmax[index];
    if (a < 0) continue;
    const int nc = index / bins;
    const int batch = static_cast<int>(rois[(nc / channels) * 5]);
    caffe_gpu_atomic_add(top_diff[index],
        bottom_diff + (batch * channels + nc % channels) * plane + a);
  }
}

}  // namespace

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) return;  // no RoIs (or no channels): launch nothing
  CheckRoiKernelCount(this->layer_param_, count, "top");
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  // NOLINT_NEXT_LINE(whitespace/operators)
  ROIPoolForward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), bottom[1]->gpu_data(), spatial_scale_, channels_,
      height_, width_, pooled_h_, pooled_w_, top[0]->mutable_gpu_data(),
      argmax_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] || bottom[0]->count() == 0) return;  // nothing to write
  Dtype* diff = bottom[0]->mutable_gpu_diff();
  caffe_gpu_set(bottom[0]->count(), Dtype(0), diff);
  const int count = top[0]->count();
  if (count == 0) return;
  CheckRoiKernelCount(this->layer_param_, count, "top");
  // NOLINT_NEXT_LINE(whitespace/operators)
  ROIPoolBackward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, top[0]->gpu_diff(), argmax_.gpu_data(), bottom[1]->gpu_data(), channels_,
      height_ * width_, pooled_h_ * pooled_w_, diff);
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(ROIPoolingLayer);

}  // namespace caffe

#endif  // ROI_LAYERS_CPU_ONLY
