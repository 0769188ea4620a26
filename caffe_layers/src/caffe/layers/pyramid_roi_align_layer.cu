// CUDA PyramidROIAlign: the device passes of roi_align_kernels.cuh run with CudaDevice, one
// launch over all RoIs and levels. Compiled to nothing under the ROI_LAYERS_CPU_ONLY switch
// (the layer then runs its CPU code in GPU mode).
#ifndef ROI_LAYERS_CPU_ONLY

#include <vector>

#include "caffe/layers/roi_align_kernels.cuh"

namespace caffe {

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  ForwardOn(CudaDevice(), bottom, top);
}

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  BackwardOn(CudaDevice(), top, propagate_down, bottom);
}

INSTANTIATE_LAYER_GPU_FUNCS(PyramidROIAlignLayer);

}  // namespace caffe

#endif  // ROI_LAYERS_CPU_ONLY
