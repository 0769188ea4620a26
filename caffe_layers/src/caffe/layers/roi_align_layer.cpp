#include <cmath>
#include <string>
#include <vector>

#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

using roi_align::Box;
using roi_align::Taps;

template <typename Dtype>
void ROIAlignLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const ROIPoolingParameter& rp = CheckRoiPoolingParam(this->layer_param_);
  const std::string who = RoiLayerName(this->layer_param_);
  CHECK(std::isfinite(rp.pad_ratio()) && rp.pad_ratio() >= 0)
      << who << ": roi_pooling_param.pad_ratio must be finite and >= 0, got "
      << rp.pad_ratio();
  CHECK_LE(rp.bi_type(), 1u) << who
      << ": roi_pooling_param.bi_type must be 0 (bilinear) or 1 (bicubic)";
  CHECK(rp.sampling_ratio() >= -1 && rp.sampling_ratio() <= roi_align::kMaxGrid) << who
      << ": roi_pooling_param.sampling_ratio must be -1, 0 (adaptive) or in [1, "
      << roi_align::kMaxGrid << "], got " << rp.sampling_ratio();
  params_ = roi_align::ParamsFrom<Dtype>(rp, 0, 0);  // the map size is set in Reshape
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
void ROIAlignLayer<Dtype>::ComputeTaps(const Blob<Dtype>& rois) {
  const Dtype* r = rois.cpu_data();
  const roi_align::Params<Dtype>& p = params_;
  boxes_.resize(num_rois_);
  tap_y_start_.resize(num_rois_ + 1);
  tap_x_start_.resize(num_rois_ + 1);
  tap_y_start_[0] = tap_x_start_[0] = 0;
  for (int n = 0; n < num_rois_; ++n) {
    boxes_[n] = roi_align::roi_box(r + n * 5, p);
    tap_y_start_[n + 1] = tap_y_start_[n] + p.pooled_h * boxes_[n].grid_h;
    tap_x_start_[n + 1] = tap_x_start_[n] + p.pooled_w * boxes_[n].grid_w;
  }
  taps_y_.resize(tap_y_start_[num_rois_]);
  taps_x_.resize(tap_x_start_[num_rois_]);
#pragma omp parallel for
  for (int n = 0; n < num_rois_; ++n) {
    const Box<Dtype>& b = boxes_[n];
    for (int ph = 0; ph < p.pooled_h; ++ph) {
      for (int iy = 0; iy < b.grid_h; ++iy) {
        const int t = tap_y_start_[n] + ph * b.grid_h + iy;
        taps_y_[t] = roi_align::make_taps(roi_align::sample_coord(b.start_h, b.bin_h,
            ph, iy, b.grid_h), p.height, p.bi_type);
      }
    }
    for (int pw = 0; pw < p.pooled_w; ++pw) {
      for (int ix = 0; ix < b.grid_w; ++ix) {
        const int t = tap_x_start_[n] + pw * b.grid_w + ix;
        taps_x_[t] = roi_align::make_taps(roi_align::sample_coord(b.start_w, b.bin_w,
            pw, ix, b.grid_w), p.width, p.bi_type);
      }
    }
  }
}

namespace {

// Looks up the precomputed taps of one bin's sample rows (or columns), without copying them.
template <typename Dtype>
struct TapTable {
  const Taps<Dtype>* taps;
  const Taps<Dtype>& operator()(int i) const { return taps[i]; }
};

// The precomputed taps of bin row ph (or column pw) of RoI n.
template <typename Dtype>
TapTable<Dtype> BinTaps(const vector<Taps<Dtype> >& taps, const vector<int>& start, int n,
    int bin, int grid) {
  const TapTable<Dtype> table = {taps.data() + start[n] + bin * grid};
  return table;
}

template <typename Dtype>
struct PlainAdd {
  void operator()(Dtype* a, Dtype v) const { *a += v; }
};

}  // namespace

template <typename Dtype>
void ROIAlignLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (num_rois_ == 0) return;
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  ComputeTaps(*bottom[1]);
  const Dtype* data = bottom[0]->cpu_data();
  const Dtype* rois = bottom[1]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  int* argmax = params_.is_max ? argmax_.mutable_cpu_data() : NULL;
  roi_align::with_tap_count(params_.bi_type, [&](auto taps) {
    this->template ForwardCpuTaps<decltype(taps)::value>(data, rois, top_data, argmax);
  });
}

template <typename Dtype>
template <int K>
void ROIAlignLayer<Dtype>::ForwardCpuTaps(const Dtype* data, const Dtype* rois,
    Dtype* top_data, int* argmax) {
  const roi_align::Params<Dtype>& p = params_;
  const int plane = p.height * p.width, bins = p.pooled_h * p.pooled_w;
  const int channels = channels_;
#pragma omp parallel for schedule(dynamic, 16)
  for (int nc = 0; nc < num_rois_ * channels; ++nc) {
    const int n = nc / channels, c = nc % channels;
    const int batch = static_cast<int>(rois[n * 5]);
    const Dtype* in = data + (batch * channels + c) * plane;
    const Box<Dtype>& b = boxes_[n];
    int am = -1;
    for (int ph = 0; ph < p.pooled_h; ++ph) {
      const TapTable<Dtype> ty = BinTaps(taps_y_, tap_y_start_, n, ph, b.grid_h);
      for (int pw = 0; pw < p.pooled_w; ++pw) {
        const TapTable<Dtype> tx = BinTaps(taps_x_, tap_x_start_, n, pw, b.grid_w);
        const int o = nc * bins + ph * p.pooled_w + pw;
        top_data[o] = roi_align::pool_bin<K>(in, p.width, b.grid_h, b.grid_w, p.is_max, ty,
            tx, &am);
        if (argmax) argmax[o] = am;
      }
    }
  }
}

template <typename Dtype>
void ROIAlignLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  // The RoI coordinates get no gradient (as in Fast R-CNN).
  if (!propagate_down[0]) return;
  Dtype* diff = bottom[0]->mutable_cpu_diff();
  caffe_set(bottom[0]->count(), Dtype(0), diff);
  if (num_rois_ == 0) return;
  ComputeTaps(*bottom[1]);
  const Dtype* rois = bottom[1]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  const int* argmax = params_.is_max ? argmax_.cpu_data() : NULL;
  roi_align::with_tap_count(params_.bi_type, [&](auto taps) {
    this->template BackwardCpuTaps<decltype(taps)::value>(rois, top_diff, argmax, diff);
  });
}

template <typename Dtype>
template <int K>
void ROIAlignLayer<Dtype>::BackwardCpuTaps(const Dtype* rois, const Dtype* top_diff,
    const int* argmax, Dtype* diff) {
  const roi_align::Params<Dtype>& p = params_;
  const int plane = p.height * p.width, bins = p.pooled_h * p.pooled_w;
  const int channels = channels_;
  // One channel per thread: a channel's gradient planes are written by that thread alone.
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < channels; ++c) {
    for (int n = 0; n < num_rois_; ++n) {
      const int batch = static_cast<int>(rois[n * 5]);
      Dtype* out = diff + (batch * channels + c) * plane;
      const Box<Dtype>& b = boxes_[n];
      const int nc = n * channels + c;
      for (int ph = 0; ph < p.pooled_h; ++ph) {
        const TapTable<Dtype> ty = BinTaps(taps_y_, tap_y_start_, n, ph, b.grid_h);
        for (int pw = 0; pw < p.pooled_w; ++pw) {
          const TapTable<Dtype> tx = BinTaps(taps_x_, tap_x_start_, n, pw, b.grid_w);
          const int o = nc * bins + ph * p.pooled_w + pw;
          roi_align::scatter_bin<K>(out, p.width, b.grid_h, b.grid_w, p.is_max,
              argmax ? argmax[o] : -1, top_diff[o], ty, tx, PlainAdd<Dtype>());
        }
      }
    }
  }
}

#if defined(CPU_ONLY)
STUB_GPU(ROIAlignLayer);
#elif defined(ROI_LAYERS_CPU_ONLY)
ROI_LAYER_GPU_RUNS_CPU(ROIAlignLayer);
#endif

INSTANTIATE_CLASS(ROIAlignLayer);
REGISTER_LAYER_CLASS(ROIAlign);

}  // namespace caffe
