#include <cmath>
#include <vector>

#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

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
#pragma omp parallel for schedule(dynamic, 16)
  for (int nc = 0; nc < num_rois_ * channels; ++nc) {
    const int n = nc / channels;
    const Dtype* in = data + (static_cast<int>(rois[n * 5]) * channels + nc % channels) * plane;
    const int* rows = &bounds_[n * per_roi * 3];
    const int* cols = rows + pooled_h_ * 3;
    for (int ph = 0; ph < pooled_h_; ++ph) {
      const int* r = rows + ph * 3;
      for (int pw = 0; pw < pooled_w_; ++pw) {
        const int* c = cols + pw * 3;
        const int o = nc * bins + ph * pooled_w_ + pw;
        top_data[o] = roi_pool::max_in(in, width_, r[2] && c[2], r[0], r[1], c[0], c[1],
            &argmax[o]);
      }
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
#pragma omp parallel for
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
