#ifndef CAFFE_ROI_POOLING_LAYER_HPP_
#define CAFFE_ROI_POOLING_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/channels_last.hpp"
#include "caffe/layers/roi_pooling_geometry.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Fast R-CNN RoI max pooling. Bottoms: features (N, C, H, W) and rois (R, 5) of
 *        [batch_index, x1, y1, x2, y2] in image coordinates; top (R, C, pooled_h, pooled_w).
 *        Parameters: roi_pooling_param.{pooled_h, pooled_w, spatial_scale}.
 */
template <typename Dtype>
class ROIPoolingLayer : public Layer<Dtype> {
 public:
  explicit ROIPoolingLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "ROIPooling"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  // The GPU passes, written once (roi_pooling_kernels.cuh) for any Device of roi_device.cuh:
  // Forward_gpu / Backward_gpu run them with CudaDevice, the emulation test on the host.
  template <typename Device>
  void ForwardOn(const Device& device, const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  template <typename Device>
  void BackwardOn(const Device& device, const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  int channels_, height_, width_;
  int pooled_h_, pooled_w_;
  Dtype spatial_scale_;
  int num_rois_;
  Blob<int> argmax_;  // index into the input plane of each output's maximum, -1 if empty
  // CPU: each RoI's bin rows [start, end) and columns, computed once per forward pass:
  // bounds_[(n * (pooled_h + pooled_w) + i) * 3] = {start, end, nonempty}, rows first.
  vector<int> bounds_;
  // CPU: the bottom channels-last (N, H, W, C), so that the max runs over channel vectors.
  channels_last::Buffer<Dtype> channels_last_;
};

}  // namespace caffe

#endif  // CAFFE_ROI_POOLING_LAYER_HPP_
