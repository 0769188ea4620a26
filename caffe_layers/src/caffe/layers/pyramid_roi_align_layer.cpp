#include <cmath>
#include <string>
#include <vector>

#include "caffe/layers/pyramid_roi_align_layer.hpp"
#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace roi_align {

int PyramidLevel(double x1, double y1, double x2, double y2,
    const PyramidROIParameter& pp, int levels) {
  double w = x2 - x1, h = y2 - y1;
  if (pp.level_rule() == PyramidROIParameter_LevelRule_FLOOR_PLUS_ONE) {
    w += 1;
    h += 1;
  }
  const double size = std::sqrt(w * h);
  double level;
  switch (pp.level_rule()) {
  case PyramidROIParameter_LevelRule_ROUND:
    level = pp.canonical_level() + std::round(std::log2(size / pp.canonical_size()));
    break;
  case PyramidROIParameter_LevelRule_FINEST_SCALE:
    level = pp.first_level() + std::floor(std::log2(size / pp.finest_scale() + 1e-6));
    break;
  default:  // FLOOR, FLOOR_PLUS_ONE
    level = std::floor(pp.canonical_level() + std::log2(size / pp.canonical_size() + 1e-6));
  }
  const double index = level - pp.first_level();
  if (!(index >= 0)) return 0;  // also NaN
  return index >= levels - 1 ? levels - 1 : static_cast<int>(index);
}

}  // namespace roi_align

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const std::string who = RoiLayerName(this->layer_param_);
  params_ = roi_align::CheckedParams<Dtype>(this->layer_param_);
  CHECK(!this->layer_param_.roi_pooling_param().has_spatial_scale()) << who
      << ": roi_pooling_param.spatial_scale is not used by PyramidROIAlign; give one "
      << "pyramid_roi_param.spatial_scale per feature bottom instead";
  const PyramidROIParameter& pp = this->layer_param_.pyramid_roi_param();
  num_levels_ = static_cast<int>(bottom.size()) - 1;
  CHECK_EQ(pp.spatial_scale_size(), num_levels_) << who << ": pyramid_roi_param has "
      << pp.spatial_scale_size() << " spatial_scale values for " << num_levels_
      << " feature bottoms; give one per feature bottom, finest first";
  scales_.clear();
  for (int l = 0; l < num_levels_; ++l) {
    const float s = pp.spatial_scale(l);
    CHECK(std::isfinite(s) && s > 0) << who << ": pyramid_roi_param.spatial_scale[" << l
        << "] (bottom '" << this->layer_param_.bottom(l + 1)
        << "') must be finite and > 0, got " << s;
    scales_.push_back(s);
  }
  CHECK(std::isfinite(pp.canonical_size()) && pp.canonical_size() > 0) << who
      << ": pyramid_roi_param.canonical_size must be finite and > 0, got "
      << pp.canonical_size();
  CHECK(std::isfinite(pp.finest_scale()) && pp.finest_scale() > 0) << who
      << ": pyramid_roi_param.finest_scale must be finite and > 0, got " << pp.finest_scale();
}

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const LayerParameter& param = this->layer_param_;
  const std::string who = RoiLayerName(param);
  num_rois_ = CheckRoisShape(param, *bottom[0], 0);  // the RoIs come first here
  const Blob<Dtype>& first = *bottom[1];
  for (int l = 0; l < num_levels_; ++l) {
    const Blob<Dtype>& f = *bottom[l + 1];
    CHECK_EQ(f.num_axes(), 4) << who << ": bottom '" << param.bottom(l + 1)
        << "' must be (N, C, H, W), got " << f.shape_string();
    CHECK(f.num() == first.num() && f.channels() == first.channels()) << who
        << ": every feature bottom must have the same N and C; bottom '"
        << param.bottom(l + 1) << "' is " << f.shape_string() << ", bottom '"
        << param.bottom(1) << "' is " << first.shape_string();
    CHECK(f.height() > 0 && f.width() > 0) << who << ": bottom '" << param.bottom(l + 1)
        << "' has an empty map, " << f.shape_string();
  }
  channels_ = first.channels();
  top[0]->Reshape(num_rois_, channels_, params_.pooled_h, params_.pooled_w);
  if (params_.is_max) argmax_.Reshape(top[0]->shape());
  levels_.Reshape(vector<int>(1, num_rois_));
  const size_t table = num_levels_ * sizeof(roi_align::MapRef<Dtype>);
  if (!gpu_maps_ || gpu_maps_->size() != table) gpu_maps_.reset(new SyncedMemory(table));
}

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::AssignLevels(const vector<Blob<Dtype>*>& bottom) {
  CheckRoiBatchIndices(this->layer_param_, *bottom[0], bottom[1]->num(), 0, 1);
  const PyramidROIParameter& pp = this->layer_param_.pyramid_roi_param();
  const Dtype* r = bottom[0]->cpu_data();
  int* level = levels_.mutable_cpu_data();
  for (int n = 0; n < num_rois_; ++n, r += 5) {
    level[n] = roi_align::PyramidLevel(r[1], r[2], r[3], r[4], pp, num_levels_);
  }
}

template <typename Dtype>
vector<roi_align::MapRef<Dtype> > PyramidROIAlignLayer<Dtype>::Maps(
    const vector<Blob<Dtype>*>& bottom) const {
  vector<roi_align::MapRef<Dtype> > maps;
  for (int l = 0; l < num_levels_; ++l) {
    maps.push_back(roi_align::MapOfBlob(*bottom[l + 1], scales_[l]));
  }
  return maps;
}

template <typename Dtype>
bool PyramidROIAlignLayer<Dtype>::AnyFeatureGradient(const vector<bool>& propagate_down)
    const {
  for (int l = 1; l < static_cast<int>(propagate_down.size()); ++l) {
    if (propagate_down[l]) return true;
  }
  return false;
}

template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (num_rois_ == 0) return;
  AssignLevels(bottom);
  vector<roi_align::MapRef<Dtype> > maps = Maps(bottom);
  for (int l = 0; l < num_levels_; ++l) maps[l].data = bottom[l + 1]->cpu_data();
  cpu_.Forward(params_, maps, levels_.cpu_data(), bottom[0]->cpu_data(), num_rois_,
      bottom[1]->num(), channels_, top[0]->mutable_cpu_data(),
      params_.is_max ? argmax_.mutable_cpu_data() : NULL);
}

// Every feature level's diff is written (zero where no RoI reaches it) when any of them
// propagates down; the RoIs get no gradient.
template <typename Dtype>
void PyramidROIAlignLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!AnyFeatureGradient(propagate_down)) return;
  vector<roi_align::MapRef<Dtype> > maps = Maps(bottom);
  // Every level's diff is written whole, zeros included.
  for (int l = 0; l < num_levels_; ++l) maps[l].diff = bottom[l + 1]->mutable_cpu_diff();
  cpu_.Backward(params_, maps, levels_.cpu_data(), bottom[0]->cpu_data(), num_rois_,
      bottom[1]->num(), channels_, top[0]->cpu_diff(),
      params_.is_max ? argmax_.cpu_data() : NULL);
}

#if defined(CPU_ONLY)
STUB_GPU(PyramidROIAlignLayer);
#elif defined(ROI_LAYERS_CPU_ONLY)
ROI_LAYER_GPU_RUNS_CPU(PyramidROIAlignLayer);
#endif

INSTANTIATE_CLASS(PyramidROIAlignLayer);
REGISTER_LAYER_CLASS(PyramidROIAlign);

}  // namespace caffe
