// The smooth L1 function, shared by the CPU and CUDA code of SmoothL1LossLayer.
#ifndef CAFFE_SMOOTH_L1_HPP_
#define CAFFE_SMOOTH_L1_HPP_

#include "caffe/layers/roi_host_device.hpp"

namespace caffe {

// Element i of the loss: d = inside * (pred - target); writes its error (times outside) and
// the error's derivative with respect to pred.
template <typename Dtype>
ROI_HD void smooth_l1(Dtype pred, Dtype target, Dtype inside, Dtype outside,
    Dtype sigma2, Dtype* error, Dtype* grad) {
  const Dtype d = inside * (pred - target);
  const Dtype ad = d < 0 ? -d : d;
  if (ad < 1 / sigma2) {
    *error = Dtype(0.5) * sigma2 * d * d;
    *grad = sigma2 * d;
  } else {
    *error = ad - Dtype(0.5) / sigma2;
    *grad = d < 0 ? Dtype(-1) : Dtype(1);
  }
  *error *= outside;
  *grad *= outside * inside;
}

}  // namespace caffe

#endif  // CAFFE_SMOOTH_L1_HPP_
