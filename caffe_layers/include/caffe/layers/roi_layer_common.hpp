// Checks and build switches shared by the RoI layers (ROIAlign, ROIPooling, SmoothL1Loss).
#ifndef CAFFE_ROI_LAYER_COMMON_HPP_
#define CAFFE_ROI_LAYER_COMMON_HPP_

#include <stdint.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/layer.hpp"

namespace caffe {

// "ROIAlign layer 'roi_pool5'": how every RoI layer error starts.
inline std::string RoiLayerName(const LayerParameter& param) {
  return std::string(param.type()) + " layer '" + param.name() + "'";
}

// Largest element count a RoI kernel may loop over. CUDA_KERNEL_LOOP keeps an int index i < n
// and adds the grid stride (< n + 512 with CAFFE_GET_BLOCKS), so i + stride stays below INT_MAX
// only for n <= (INT_MAX - 1024) / 2, about 2^30 (Caffe's blobs allow up to INT_MAX).
const int kMaxKernelCount = (INT_MAX - 1024) / 2;

inline bool RoiKernelCountOk(int64_t count) {
  return count >= 0 && count <= kMaxKernelCount;
}

// Called before a kernel launch over `count` elements of `what`: a clear error past the cap.
inline void CheckRoiKernelCount(const LayerParameter& param, int64_t count,
    const char* what) {
  CHECK(RoiKernelCountOk(count)) << RoiLayerName(param) << ": " << what << " has " << count
      << " elements; the CUDA kernels handle at most " << kMaxKernelCount;
}

// pooled_h, pooled_w > 0 and a finite spatial_scale > 0, as ROIAlign and ROIPooling need.
inline const ROIPoolingParameter& CheckRoiPoolingParam(const LayerParameter& param) {
  const ROIPoolingParameter& rp = param.roi_pooling_param();
  const std::string who = RoiLayerName(param);
  CHECK_GT(rp.pooled_h(), 0) << who << ": roi_pooling_param.pooled_h must be > 0";
  CHECK_GT(rp.pooled_w(), 0) << who << ": roi_pooling_param.pooled_w must be > 0";
  CHECK(std::isfinite(rp.spatial_scale()) && rp.spatial_scale() > 0)
      << who << ": roi_pooling_param.spatial_scale must be finite and > 0, got "
      << rp.spatial_scale();
  return rp;
}

// The RoI bottom (bottom rois_index of the layer) holds R rows of [batch_index, x1, y1, x2,
// y2]: shape (R, 5) or (R, 5, 1, 1). Returns R.
template <typename Dtype>
int CheckRoisShape(const LayerParameter& param, const Blob<Dtype>& rois, int rois_index = 1) {
  const int rows = rois.num_axes() > 0 ? rois.shape(0) : 0;
  CHECK(rois.num_axes() >= 2 && rois.count() == rows * 5 && rois.shape(1) == 5)
      << RoiLayerName(param) << ": bottom '" << param.bottom(rois_index)
      << "' must have shape (R, 5) of [batch_index, x1, y1, x2, y2], got "
      << rois.shape_string();
  return rows;
}

// bottom[0]: features (N, C, H, W); bottom[1]: RoIs. Returns the number of RoIs.
template <typename Dtype>
int CheckRoiBottoms(const LayerParameter& param, const vector<Blob<Dtype>*>& bottom) {
  CHECK_EQ(bottom[0]->num_axes(), 4) << RoiLayerName(param) << ": bottom '"
      << param.bottom(0) << "' must be (N, C, H, W), got " << bottom[0]->shape_string();
  return CheckRoisShape(param, *bottom[1]);
}

// Every batch index must be an integer in [0, num); anything else is a fatal error that names
// the layer, the RoI's row and the value. rois is the layer's bottom rois_index, the features
// (num images) its bottom features_index.
template <typename Dtype>
void CheckRoiBatchIndices(const LayerParameter& param, const Blob<Dtype>& rois,
    int num, int rois_index = 1, int features_index = 0) {
  const Dtype* r = rois.cpu_data();
  const int rows = rois.shape(0);
  for (int i = 0; i < rows; ++i) {
    const Dtype b = r[i * 5];
    CHECK(std::isfinite(b) && b == std::floor(b) && b >= 0 && b < num)
        << RoiLayerName(param) << ": bottom '" << param.bottom(rois_index) << "' row " << i
        << " has batch index " << b << "; it must be an integer in [0, " << num
        << ") (bottom '" << param.bottom(features_index) << "' has " << num << " images)";
  }
}

}  // namespace caffe

// Build switch ROI_LAYERS_CPU_ONLY (Makefile.config): a CUDA build whose RoI layers run their
// CPU code in GPU mode, for GPUs or drivers that reject the RoI kernels. Used instead of
// STUB_GPU in the layers' .cpp files; their .cu files compile to nothing under the switch.
#define ROI_LAYER_GPU_RUNS_CPU(classname) \
template <typename Dtype> \
void classname<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom, \
    const vector<Blob<Dtype>*>& top) { Forward_cpu(bottom, top); } \
template <typename Dtype> \
void classname<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top, \
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) { \
  Backward_cpu(top, propagate_down, bottom); \
}

#endif  // CAFFE_ROI_LAYER_COMMON_HPP_
