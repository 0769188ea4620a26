#ifndef CAFFE_ROI_ALIGN_LAYER_HPP_
#define CAFFE_ROI_ALIGN_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/roi_align_cpu.hpp"
#include "caffe/layers/roi_align_geometry.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

namespace roi_align {

// The geometry's view of a layer's roi_pooling_param on a height x width map: sampling_ratio
// -1 resolved through is_multi_interpolate (2 x 2 or 1 sample per bin).
template <typename Dtype>
Params<Dtype> ParamsFrom(const ROIPoolingParameter& rp, int height, int width) {
  Params<Dtype> p;
  p.height = height;
  p.width = width;
  p.pooled_h = rp.pooled_h();
  p.pooled_w = rp.pooled_w();
  p.spatial_scale = rp.spatial_scale();
  p.pad_ratio = rp.pad_ratio();
  p.bi_type = rp.bi_type();
  p.alignment = rp.alignment();
  p.sampling_ratio = rp.sampling_ratio() >= 0 ? rp.sampling_ratio()
      : (rp.is_multi_interpolate() ? 2 : 1);
  p.is_max = rp.pool() == ROIPoolingParameter_PoolMethod_MAX;
  return p;
}

// A feature bottom as the geometry's map at `scale` (data and diff pointers left NULL for
// the caller to set).
template <typename Dtype>
MapRef<Dtype> MapOfBlob(const Blob<Dtype>& features, Dtype scale) {
  MapRef<Dtype> m;
  m.data = NULL;
  m.diff = NULL;
  m.height = features.height();
  m.width = features.width();
  m.spatial_scale = scale;
  return m;
}

// Checks the sampling settings of roi_pooling_param that ROIAlign and PyramidROIAlign share
// (pad_ratio, bi_type, sampling_ratio, and what each alignment allows), each failure an error
// that names the layer and the value, and returns them as Params (map size and scale 0: the
// layer sets them per bottom).
template <typename Dtype>
Params<Dtype> CheckedParams(const LayerParameter& param);

}  // namespace roi_align

/**
 * @brief RoIAlign: pools each region of interest into a fixed pooled_h x pooled_w grid by
 *        interpolating the feature map at sample points, with no rounding of the region.
 *
 * Bottoms: features (N, C, H, W) and rois (R, 5) of [batch_index, x1, y1, x2, y2] in image
 * coordinates. Top: (R, C, pooled_h, pooled_w). Parameters: roi_pooling_param, shared with
 * ROIPooling (pooled_h, pooled_w, spatial_scale, pad_ratio, bi_type, is_multi_interpolate,
 * pool, sampling_ratio, alignment); the geometry is defined in roi_align_geometry.hpp.
 */
template <typename Dtype>
class ROIAlignLayer : public Layer<Dtype> {
 public:
  explicit ROIAlignLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "ROIAlign"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  // The GPU passes, written once (roi_align_kernels.cuh) for any Device of roi_device.cuh:
  // Forward_gpu / Backward_gpu run them with CudaDevice, the emulation test on the host.
  template <typename Device>
  void ForwardOn(const Device& device, const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  template <typename Device>
  void BackwardOn(const Device& device, const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  roi_align::Params<Dtype> params_;
  int channels_;
  int num_rois_;
  Blob<int> argmax_;  // MAX: winning sample of each output, -1 if none
  roi_align::CpuPasses<Dtype> cpu_;
};

}  // namespace caffe

#endif  // CAFFE_ROI_ALIGN_LAYER_HPP_
