// The SmoothL1Loss kernel and SmoothL1LossLayer's device passes, written once for nvcc and for
// the host emulation (roi_device.cuh). Zero elements (a batch with no RoIs) give loss 0 and
// launch nothing, as the CPU code does.
#ifndef CAFFE_SMOOTH_L1_KERNELS_CUH_
#define CAFFE_SMOOTH_L1_KERNELS_CUH_

#include <algorithm>
#include <vector>

#include "caffe/layers/roi_device.cuh"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/layers/smooth_l1.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"

namespace caffe {

namespace smooth_l1_kernels {

template <typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) Forward(
    const int n, const Dtype* pred, const Dtype* target, const Dtype* inside,
    const Dtype* outside, const Dtype sigma2, Dtype* errors, Dtype* grad) {
  CUDA_KERNEL_LOOP(i, n) {
    smooth_l1(pred[i], target[i], inside ? inside[i] : Dtype(1),
        outside ? outside[i] : Dtype(1), sigma2, &errors[i], &grad[i]);
  }
}

}  // namespace smooth_l1_kernels

template <typename Dtype>
template <typename Device>
void SmoothL1LossLayer<Dtype>::ForwardOn(const Device&, const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = bottom[0]->count();
  if (count == 0) {  // e.g. no RoIs in a batch: loss 0, as on the CPU; launch nothing
    top[0]->mutable_cpu_data()[0] = 0;
    return;
  }
  CheckRoiKernelCount(this->layer_param_, count, "bottom 0");
  if (ones_.count() != count) {
    ones_.ReshapeLike(*bottom[0]);
    Device::set(count, Dtype(1), Device::mutable_data(&ones_));
  }
  Device::launch(smooth_l1_kernels::Forward<Dtype>, count, count, Device::data(*bottom[0]),
      Device::data(*bottom[1]), has_weights_ ? Device::data(*bottom[2]) : NULL,
      has_weights_ ? Device::data(*bottom[3]) : NULL, sigma2_,
      Device::mutable_data(&errors_), Device::mutable_data(&grad_));
  Dtype loss = 0;
  Device::dot(count, Device::data(errors_), Device::data(ones_), &loss);
  top[0]->mutable_cpu_data()[0] = loss / std::max(bottom[0]->num(), 1);
}

template <typename Dtype>
template <typename Device>
void SmoothL1LossLayer<Dtype>::BackwardOn(const Device&, const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (bottom[0]->count() == 0) return;  // zero elements: an empty diff, nothing to launch
  for (int i = 0; i < 2; ++i) {
    if (!propagate_down[i]) continue;
    const Dtype sign = i == 0 ? 1 : -1;
    const Dtype alpha = sign * top[0]->cpu_diff()[0] / std::max(bottom[0]->num(), 1);
    // diff = alpha * grad, whatever the diff held (axpby with beta 0 may compute 0 * NaN).
    Device::scale(bottom[i]->count(), alpha, Device::data(grad_),
        Device::mutable_diff(bottom[i]));
  }
}

}  // namespace caffe

#endif  // CAFFE_SMOOTH_L1_KERNELS_CUH_
