// CUDA ROIPooling: the device passes of roi_pooling_kernels.cuh run with CudaDevice. Compiled to
// nothing under the ROI_LAYERS_CPU_ONLY switch (the layer then runs its CPU code in GPU mode).
#ifndef ROI_LAYERS_CPU_ONLY

#include <vector>

#include "caffe/layers/roi_pooling_kernels.cuh"

namespace caffe {

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  ForwardOn(CudaDevice(), bottom, top);
}

template <typename Dtype>
void ROIPoolingLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  BackwardOn(CudaDevice(), top, propagate_down, bottom);
}

INSTANTIATE_LAYER_GPU_FUNCS(ROIPoolingLayer);

}  // namespace caffe

#endif  // ROI_LAYERS_CPU_ONLY
