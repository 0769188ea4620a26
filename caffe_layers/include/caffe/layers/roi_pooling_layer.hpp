#ifndef CAFFE_ROI_POOLING_LAYER_HPP_
#define CAFFE_ROI_POOLING_LAYER_HPP_

#include <cmath>
#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#ifdef __CUDACC__
#define ROI_POOL_HD __host__ __device__ __forceinline__
#else
#define ROI_POOL_HD inline
#endif

namespace caffe {

namespace roi_pool {

// Scaled RoI coordinates are clamped to +-kMaxCoord before rounding to int: far beyond any
// feature map, and safe from integer overflow.
const float kMaxCoord = 1e7f;

// A RoI corner on the feature map: v * scale rounded half away from zero, clamped to
// +-kMaxCoord; *ok becomes false for NaN or infinite input.
template <typename Dtype>
ROI_POOL_HD int scaled_corner(Dtype v, Dtype scale, bool* ok) {
  v *= scale;
  if (!(v == v && v - v == 0)) {
    *ok = false;
    return 0;
  }
  return static_cast<int>(round(v < -kMaxCoord ? -kMaxCoord : (v > kMaxCoord ? kMaxCoord : v)));
}

// Fast R-CNN's bin (ph, pw) of one RoI on an H x W map: the corners times spatial_scale,
// rounded half away from zero; size max(end - start + 1, 1); bin edges floor / ceil, clipped
// to the map. Returns false for an empty bin (or a RoI with non-finite coordinates).
template <typename Dtype>
ROI_POOL_HD bool bin_bounds(const Dtype* roi, Dtype scale, int height, int width,
    int pooled_h, int pooled_w, int ph, int pw, int* hstart, int* hend, int* wstart,
    int* wend) {
  bool ok = true;
  const int x1 = scaled_corner(roi[1], scale, &ok), y1 = scaled_corner(roi[2], scale, &ok);
  const int x2 = scaled_corner(roi[3], scale, &ok), y2 = scaled_corner(roi[4], scale, &ok);
  if (!ok) return false;
  const int roi_h = y2 - y1 + 1 > 1 ? y2 - y1 + 1 : 1;
  const int roi_w = x2 - x1 + 1 > 1 ? x2 - x1 + 1 : 1;
  const Dtype bin_h = static_cast<Dtype>(roi_h) / pooled_h;
  const Dtype bin_w = static_cast<Dtype>(roi_w) / pooled_w;
  int hs = static_cast<int>(floor(ph * bin_h)) + y1;
  int he = static_cast<int>(ceil((ph + 1) * bin_h)) + y1;
  int ws = static_cast<int>(floor(pw * bin_w)) + x1;
  int we = static_cast<int>(ceil((pw + 1) * bin_w)) + x1;
  *hstart = hs < 0 ? 0 : (hs > height ? height : hs);
  *hend = he < 0 ? 0 : (he > height ? height : he);
  *wstart = ws < 0 ? 0 : (ws > width ? width : ws);
  *wend = we < 0 ? 0 : (we > width ? width : we);
  return *hend > *hstart && *wend > *wstart;
}

// Max over one bin of a plane; *argmax = h * width + w, or -1 (and 0 returned) when empty.
template <typename Dtype>
ROI_POOL_HD Dtype pool_bin(const Dtype* plane, const Dtype* roi, Dtype scale, int height,
    int width, int pooled_h, int pooled_w, int ph, int pw, int* argmax) {
  int hs, he, ws, we;
  *argmax = -1;
  if (!bin_bounds(roi, scale, height, width, pooled_h, pooled_w, ph, pw, &hs, &he, &ws, &we)) {
    return 0;
  }
  Dtype best = plane[hs * width + ws];
  *argmax = hs * width + ws;
  for (int h = hs; h < he; ++h) {
    for (int w = ws; w < we; ++w) {
      const int i = h * width + w;
      if (plane[i] > best) {
        best = plane[i];
        *argmax = i;
      }
    }
  }
  return best;
}

}  // namespace roi_pool

/**
 * @brief Fast R-CNN RoI max pooling. Bottoms: features (N, C, H, W) and rois (R, 5) of
 *        [batch_index, x1, y1, x2, y2] in image coordinates; top (R, C, pooled_h, pooled_w).
 *        Parameters: roi_pooling_param.{pooled_h, pooled_w, spatial_scale}.
 */
template <typename Dtype>
class ROIPoolingLayer : public Layer<Dtype> {
 public:
  explicit ROIPoolingLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "ROIPooling"; }
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

  int channels_, height_, width_;
  int pooled_h_, pooled_w_;
  Dtype spatial_scale_;
  int num_rois_;
  Blob<int> argmax_;  // index into the input plane of each output's maximum, -1 if empty
};

}  // namespace caffe

#endif  // CAFFE_ROI_POOLING_LAYER_HPP_
