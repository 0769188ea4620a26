#ifndef CAFFE_SMOOTH_L1_LOSS_LAYER_HPP_
#define CAFFE_SMOOTH_L1_LOSS_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/loss_layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Fast R-CNN's smooth L1 loss for box regression.
 *
 * Bottoms: pred, target, and optionally inside_weights, outside_weights (all the same
 * count). With d = inside * (pred - target), each element costs
 *   0.5 * (sigma * d)^2     if |d| < 1 / sigma^2,
 *   |d| - 0.5 / sigma^2     otherwise,
 * times outside; the loss is their sum divided by the batch size (pred's first axis).
 * sigma comes from smooth_l1_loss_param (default 1). Gradients go to pred and, when asked, to
 * target; the weights get none.
 */
template <typename Dtype>
class SmoothL1LossLayer : public LossLayer<Dtype> {
 public:
  explicit SmoothL1LossLayer(const LayerParameter& param) : LossLayer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "SmoothL1Loss"; }
  virtual inline int ExactNumBottomBlobs() const { return -1; }
  virtual inline int MinBottomBlobs() const { return 2; }
  virtual inline int MaxBottomBlobs() const { return 4; }
  /// pred and target can both be given gradients; the weights cannot.
  virtual inline bool AllowForceBackward(const int bottom_index) const {
    return bottom_index < 2;
  }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  // The GPU passes, written once (smooth_l1_kernels.cuh) for any Device of roi_device.cuh:
  // Forward_gpu / Backward_gpu run them with CudaDevice, the emulation test on the host.
  template <typename Device>
  void ForwardOn(const Device& device, const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  template <typename Device>
  void BackwardOn(const Device& device, const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  Dtype sigma2_;
  bool has_weights_;
  Blob<Dtype> errors_;  // per-element loss (times outside)
  Blob<Dtype> grad_;    // per-element d loss / d pred, before the 1 / num and top diff
  Blob<Dtype> ones_;    // for summing errors_ on the GPU
};

}  // namespace caffe

#endif  // CAFFE_SMOOTH_L1_LOSS_LAYER_HPP_
