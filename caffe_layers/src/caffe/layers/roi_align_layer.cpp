#include <cmath>
#include <string>
#include <vector>

#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace roi_align {

template <typename Dtype>
Params<Dtype> CheckedParams(const LayerParameter& param) {
  const ROIPoolingParameter& rp = CheckRoiPoolingParam(param);
  const std::string who = RoiLayerName(param);
  CHECK(std::isfinite(rp.pad_ratio()) && rp.pad_ratio() >= 0)
      << who << ": roi_pooling_param.pad_ratio must be finite and >= 0, got "
      << rp.pad_ratio();
  CHECK_LE(rp.bi_type(), 1u) << who
      << ": roi_pooling_param.bi_type must be 0 (bilinear) or 1 (bicubic)";
  CHECK(rp.sampling_ratio() >= -1 && rp.sampling_ratio() <= kMaxGrid) << who
      << ": roi_pooling_param.sampling_ratio must be -1, 0 (adaptive) or in [1, "
      << kMaxGrid << "], got " << rp.sampling_ratio();
  const bool corners = corner_samples(rp.alignment());
  CHECK(!corners || rp.bi_type() == kBilinear) << who << ": alignment "
      << ROIPoolingParameter_Alignment_Name(rp.alignment())
      << " is defined for bilinear sampling only; bi_type must be 0, got " << rp.bi_type();
  CHECK(rp.alignment() != ROIPoolingParameter_Alignment_BIN_CORNERS ||
        rp.sampling_ratio() != 0) << who
      << ": alignment BIN_CORNERS samples at the bin corners and has no adaptive grid; "
      << "sampling_ratio must be -1 (from is_multi_interpolate) or >= 1, got 0";
  return ParamsFrom<Dtype>(param.roi_pooling_param(), 0, 0);
}

template Params<float> CheckedParams<float>(const LayerParameter& param);
template Params<double> CheckedParams<double>(const LayerParameter& param);

}  // namespace roi_align

template <typename Dtype>
void ROIAlignLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  params_ = roi_align::CheckedParams<Dtype>(this->layer_param_);
}

template <typename Dtype>
void ROIAlignLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  num_rois_ = CheckRoiBottoms(this->layer_param_, bottom);
  channels_ = bottom[0]->channels();
  params_.height = bottom[0]->height();
  params_.width = bottom[0]->width();
  top[0]->Reshape(num_rois_, channels_, params_.pooled_h, params_.pooled_w);
  if (params_.is_max) argmax_.Reshape(top[0]->shape());
}

template <typename Dtype>
void ROIAlignLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (num_rois_ == 0) return;
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  vector<roi_align::MapRef<Dtype> > maps(1,
      roi_align::MapOfBlob(*bottom[0], params_.spatial_scale));
  maps[0].data = bottom[0]->cpu_data();
  cpu_.Forward(params_, maps, NULL, bottom[1]->cpu_data(), num_rois_, bottom[0]->num(),
      channels_, top[0]->mutable_cpu_data(), params_.is_max ? argmax_.mutable_cpu_data() : NULL);
}

template <typename Dtype>
void ROIAlignLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  // The RoI coordinates get no gradient (as in Fast R-CNN).
  if (!propagate_down[0]) return;
  vector<roi_align::MapRef<Dtype> > maps(1,
      roi_align::MapOfBlob(*bottom[0], params_.spatial_scale));
  maps[0].diff = bottom[0]->mutable_cpu_diff();  // written whole, zeros included
  cpu_.Backward(params_, maps, NULL, bottom[1]->cpu_data(), num_rois_, bottom[0]->num(),
      channels_, top[0]->cpu_diff(), params_.is_max ? argmax_.cpu_data() : NULL);
}

#if defined(CPU_ONLY)
STUB_GPU(ROIAlignLayer);
#elif defined(ROI_LAYERS_CPU_ONLY)
ROI_LAYER_GPU_RUNS_CPU(ROIAlignLayer);
#endif

INSTANTIATE_CLASS(ROIAlignLayer);
REGISTER_LAYER_CLASS(ROIAlign);

}  // namespace caffe
