// The CPU RoIAlign passes, shared by ROIAlign (one feature map) and PyramidROIAlign (one map
// per level): the geometry of roi_align_geometry.hpp, with each RoI's boxes and sample taps
// computed once per pass and shared by all its channels.
#ifndef CAFFE_ROI_ALIGN_CPU_HPP_
#define CAFFE_ROI_ALIGN_CPU_HPP_

#include <stdint.h>

#include <vector>

#include "caffe/common.hpp"
#include "caffe/layers/channels_last.hpp"
#include "caffe/layers/roi_align_geometry.hpp"

namespace caffe {
namespace roi_align {

// The passes work on channels-last copies of the maps (channels_last.hpp), so that their
// innermost loops run over channels with contiguous loads and stores, in vector registers
// (roi_cpu_simd.hpp; AVX-512, AVX2 or SSE versions chosen at run time). Layout changes are
// register-tile transposes; large outputs are written with streaming stores. The forward is
// separable: the samples of a bin that share map rows share their row interpolations (see
// BinPlan in roi_align_cpu.cpp). Each channel still gets exactly the value of the geometry
// header's operations, so forward outputs are bit-identical to the scalar definition and to
// the CUDA kernels, and the backward to the scalar scatter_bin sum in RoI, bin, sample order
// (tests: TestForwardBitIdenticalToDefinition, TestBackwardBitIdenticalToDefinition).
template <typename Dtype>
class CpuPasses {
 public:
  // RoI n (rois[n * 5 ...] = batch, x1, y1, x2, y2) is pooled from maps[level[n]] (level
  // NULL: maps[0] for every RoI); p gives the sampling, each map its size and scale. Every
  // map has `channels` channels and `num` images; batch indices are checked by the caller.
  //
  // Forward writes top (R, channels, pooled_h, pooled_w) and, for MAX, argmax (same shape).
  // OpenMP over RoIs.
  void Forward(const Params<Dtype>& p, const std::vector<MapRef<Dtype> >& maps,
      const int* level, const Dtype* rois, int num_rois, int num, int channels, Dtype* top,
      int* argmax);
  // Backward writes the gradient of top_diff into each map's diff (zero where no RoI
  // reaches; also with no RoIs). OpenMP over blocks of channels: a channel's gradient is
  // written by one thread alone, in a fixed order (no races, deterministic).
  void Backward(const Params<Dtype>& p, const std::vector<MapRef<Dtype> >& maps,
      const int* level, const Dtype* rois, int num_rois, int num, int channels,
      const Dtype* top_diff, const int* argmax);

 private:
  // The box and the sample taps of every RoI on its map. Row taps of RoI n start at
  // tap_y_start_[n] (pooled_h * grid_h of them), column taps at tap_x_start_[n].
  void ComputeTaps(const Params<Dtype>& p, const std::vector<MapRef<Dtype> >& maps,
      const int* level, const Dtype* rois, int num_rois);
  // The RoIs of map l, in their order: group_[group_start_[l] ... group_start_[l + 1]).
  void GroupByLevel(const int* level, int num_rois, int num_maps);
  // The passes over the `count` RoIs group[0 ...) of one map, whose channels-last copy (or
  // gradient) is in channels_last_; K taps per axis.
  template <int K>
  void ForwardTaps(const Params<Dtype>& p, const MapRef<Dtype>& m, const Dtype* rois,
      const int* group, int count, int channels, Dtype* top, int* argmax);
  template <int K>
  void BackwardTaps(const Params<Dtype>& p, const MapRef<Dtype>& m, const Dtype* rois,
      const int* group, int count, int channels, const Dtype* top_diff, const int* argmax);

  std::vector<Box<Dtype> > boxes_;
  std::vector<Taps<Dtype> > taps_y_, taps_x_;
  std::vector<int> tap_y_start_, tap_x_start_;
  std::vector<int> group_, group_start_;
  channels_last::Buffer<Dtype> channels_last_;   // one map's data (forward) or gradient (backward)
};

}  // namespace roi_align
}  // namespace caffe

#endif  // CAFFE_ROI_ALIGN_CPU_HPP_
