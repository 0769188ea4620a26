#ifndef CAFFE_PYRAMID_ROI_ALIGN_LAYER_HPP_
#define CAFFE_PYRAMID_ROI_ALIGN_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/roi_align_cpu.hpp"
#include "caffe/layers/roi_align_geometry.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/syncedmem.hpp"

namespace caffe {

namespace roi_align {

// The level index (0 = the first feature bottom) of an [batch, x1, y1, x2, y2] RoI in image
// coordinates under the level rule of pp (caffe.proto's PyramidROIParameter), clamped to
// [0, levels - 1]. Computed in double on the host, once per RoI, for the CPU and GPU passes
// alike. A RoI whose level is not a number (NaN coordinates, or w * h < 0) goes to level 0;
// an empty one (w * h = 0) to level 0 as well, through log2(0) = -inf.
int PyramidLevel(double x1, double y1, double x2, double y2,
    const PyramidROIParameter& pp, int levels);

}  // namespace roi_align

/**
 * @brief PyramidROIAlign: RoIAlign over a feature pyramid, each RoI pooled from the level that
 *        its size chooses (FPN).
 *
 * Bottoms: rois (R, 5) of [batch_index, x1, y1, x2, y2] in image coordinates, then the
 * pyramid's feature maps (N, C, H_l, W_l), finest first, all with the same N and C. Top:
 * (R, C, pooled_h, pooled_w) in the order of the RoIs. roi_pooling_param sets the sampling
 * exactly as for ROIAlign (its spatial_scale is not used); pyramid_roi_param gives one
 * spatial_scale per level and the level rule. Each RoI is pooled exactly as ROIAlign would
 * pool it from its level's map, and its gradient goes to that level only.
 */
template <typename Dtype>
class PyramidROIAlignLayer : public Layer<Dtype> {
 public:
  explicit PyramidROIAlignLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "PyramidROIAlign"; }
  virtual inline int MinBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }
  // The RoIs get no gradient (as in Fast R-CNN); every feature level does.
  virtual inline bool AllowForceBackward(const int bottom_index) const {
    return bottom_index > 0;
  }

  // The level of each RoI from the last forward (index into the feature bottoms).
  const Blob<int>& levels() const { return levels_; }

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
  template <typename Device>
  const roi_align::MapRef<Dtype>* UploadMaps(const Device& device,
      const vector<roi_align::MapRef<Dtype> >& maps);

  // Checks the batch indices and assigns every RoI its level (levels_, on the host).
  void AssignLevels(const vector<Blob<Dtype>*>& bottom);
  // The feature bottoms as the geometry's maps (data and diff pointers left for the caller).
  vector<roi_align::MapRef<Dtype> > Maps(const vector<Blob<Dtype>*>& bottom) const;
  bool AnyFeatureGradient(const vector<bool>& propagate_down) const;

  roi_align::Params<Dtype> params_;
  vector<Dtype> scales_;
  int num_levels_;
  int channels_;
  int num_rois_;
  Blob<int> levels_;   // (R): the level of each RoI
  Blob<int> argmax_;   // MAX: winning sample of each output, -1 if none
  roi_align::CpuPasses<Dtype> cpu_;
  shared_ptr<SyncedMemory> gpu_maps_;  // the GPU kernels' MapRef table, one per level
};

}  // namespace caffe

#endif  // CAFFE_PYRAMID_ROI_ALIGN_LAYER_HPP_
