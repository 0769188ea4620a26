#ifndef ROI_LAYERS_CPU_ONLY

#include <algorithm>
#include <vector>

#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/smooth_l1.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

template <typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) SmoothL1Forward(
    const int n, const Dtype* pred, const Dtype* target, const Dtype* inside,
    const Dtype* outside, const Dtype sigma2, Dtype* errors, Dtype* grad) {
  CUDA_KERNEL_LOOP(i, n) {
    smooth_l1(pred[i], target[i], inside ? inside[i] : Dtype(1),
        outside ? outside[i] : Dtype(1), sigma2, &errors[i], &grad[i]);
  }
}

}  // namespace

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = bottom[0]->count();
  if (count == 0) {  // e.g. no RoIs in a batch: loss 0, as on the CPU; launch nothing
    top[0]->mutable_cpu_data()[0] = 0;
    return;
  }
  CheckRoiKernelCount(this->layer_param_, count, "bottom 0");
  if (ones_.count() != count) {
    ones_.ReshapeLike(*bottom[0]);
    caffe_gpu_set(count, Dtype(1), ones_.mutable_gpu_data());
  }
  // NOLINT_NEXT_LINE(whitespace/operators)
  SmoothL1Forward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), bottom[1]->gpu_data(),
      has_weights_ ? bottom[2]->gpu_data() : NULL,
      has_weights_ ? bottom[3]->gpu_data() : NULL, sigma2_,
      errors_.mutable_gpu_data(), grad_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
  Dtype loss = 0;
  caffe_gpu_dot(count, errors_.gpu_data(), ones_.gpu_data(), &loss);
  top[0]->mutable_cpu_data()[0] = loss / std::max(bottom[0]->num(), 1);
}

template <typename Dtype>
void SmoothL1LossLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (bottom[0]->count() == 0) return;  // zero elements: an empty diff, nothing to launch
  for (int i = 0; i < 2; ++i) {
    if (!propagate_down[i]) continue;
    const Dtype sign = i == 0 ? 1 : -1;
    const Dtype alpha = sign * top[0]->cpu_diff()[0] / std::max(bottom[0]->num(), 1);
    // diff = alpha * grad, whatever the diff held (axpby with beta 0 may compute 0 * NaN).
    caffe_gpu_scale(bottom[i]->count(), alpha, grad_.gpu_data(),
        bottom[i]->mutable_gpu_diff());
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(SmoothL1LossLayer);

}  // namespace caffe

#endif  // ROI_LAYERS_CPU_ONLY
