#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/smooth_l1.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  LossLayer<Dtype>::LayerSetUp(bottom, top);
  const std::string who = RoiLayerName(this->layer_param_);
  CHECK(bottom.size() == 2 || bottom.size() == 4) << who
      << ": takes (pred, target) or (pred, target, inside_weights, outside_weights), got "
      << bottom.size() << " bottoms";
  const float sigma = this->layer_param_.smooth_l1_loss_param().sigma();
  CHECK(std::isfinite(sigma) && sigma > 0) << who
      << ": smooth_l1_loss_param.sigma must be finite and > 0, got " << sigma;
  sigma2_ = sigma * sigma;
  has_weights_ = bottom.size() == 4;
}

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  LossLayer<Dtype>::Reshape(bottom, top);
  for (int i = 1; i < bottom.size(); ++i) {
    CHECK_EQ(bottom[i]->count(), bottom[0]->count()) << RoiLayerName(this->layer_param_)
        << ": bottom '" << this->layer_param_.bottom(i) << "' " << bottom[i]->shape_string()
        << " must have as many elements as bottom '" << this->layer_param_.bottom(0)
        << "' " << bottom[0]->shape_string();
  }
  errors_.ReshapeLike(*bottom[0]);
  grad_.ReshapeLike(*bottom[0]);
}

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = bottom[0]->count();
  const Dtype* pred = bottom[0]->cpu_data();
  const Dtype* target = bottom[1]->cpu_data();
  const Dtype* inside = has_weights_ ? bottom[2]->cpu_data() : NULL;
  const Dtype* outside = has_weights_ ? bottom[3]->cpu_data() : NULL;
  Dtype* errors = errors_.mutable_cpu_data();
  Dtype* grad = grad_.mutable_cpu_data();
  Dtype loss = 0;
  for (int i = 0; i < count; ++i) {
    smooth_l1(pred[i], target[i], inside ? inside[i] : Dtype(1),
        outside ? outside[i] : Dtype(1), sigma2_, &errors[i], &grad[i]);
    loss += errors[i];
  }
  top[0]->mutable_cpu_data()[0] = loss / std::max(bottom[0]->num(), 1);
}

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  for (int i = 0; i < 2; ++i) {
    if (!propagate_down[i]) continue;
    const Dtype sign = i == 0 ? 1 : -1;
    const Dtype alpha = sign * top[0]->cpu_diff()[0] / std::max(bottom[0]->num(), 1);
    // diff = alpha * grad, whatever the diff held (axpby with beta 0 may compute 0 * NaN).
    caffe_cpu_scale(bottom[i]->count(), alpha, grad_.cpu_data(),
        bottom[i]->mutable_cpu_diff());
  }
}

#if defined(CPU_ONLY)
STUB_GPU(SmoothL1LossLayer);
#elif defined(ROI_LAYERS_CPU_ONLY)
ROI_LAYER_GPU_RUNS_CPU(SmoothL1LossLayer);
#endif

INSTANTIATE_CLASS(SmoothL1LossLayer);
REGISTER_LAYER_CLASS(SmoothL1Loss);

}  // namespace caffe
