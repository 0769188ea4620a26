// The CPU-vs-device agreement checks of the RoI layers (ROIAlign in every configuration,
// PyramidROIAlign, ROIPooling, SmoothL1Loss, and the zero-size cases), written once and run
// against two devices: the real GPU (test_roi_layers_gpu.cpp, CUDA builds with a device) and
// the host emulation of the same kernel sources (test_roi_kernels_emulated.cpp, every build,
// so CI runs them). Under the floating-point policy of roi_align_geometry.hpp:
//  * forward outputs and MAX argmaxes equal bit for bit (same IEEE arithmetic, --fmad=false);
//  * backward within 2 (n - 1) u sum |terms| per element, n the number of gradient terms the
//    element receives (atomics add them in another order), computed here on the host from the
//    same geometry; an element with one term must be equal.
// The checks can fail: the reference and the device run on separate layers and blobs, the
// device's top, argmax and bottom diffs are filled with NaN / -7 before each pass (a pass that
// writes nothing fails), and every element is compared as !(|a - b| <= tol), so NaN fails.
// Seeds are fixed; the RoIs are proposal-like plus adversarial ones (off the map, tiny, huge,
// swapped, non-finite).
#ifndef CAFFE_TEST_ROI_LAYER_AGREEMENT_HPP_
#define CAFFE_TEST_ROI_LAYER_AGREEMENT_HPP_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/pyramid_roi_align_layer.hpp"
#include "caffe/layers/roi_align_geometry.hpp"
#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {
namespace roi_agreement {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const int kArgmaxSentinel = -7;

// The layers with their argmax blobs exposed, for comparison.
class ProbeROIAlign : public ROIAlignLayer<float> {
 public:
  explicit ProbeROIAlign(const LayerParameter& p) : ROIAlignLayer<float>(p) {}
  Blob<int>* argmax() { return this->params_.is_max ? &this->argmax_ : NULL; }
};

class ProbePyramidROIAlign : public PyramidROIAlignLayer<float> {
 public:
  explicit ProbePyramidROIAlign(const LayerParameter& p) : PyramidROIAlignLayer<float>(p) {}
  Blob<int>* argmax() { return this->params_.is_max ? &this->argmax_ : NULL; }
};

class ProbeROIPooling : public ROIPoolingLayer<float> {
 public:
  explicit ProbeROIPooling(const LayerParameter& p) : ROIPoolingLayer<float>(p) {}
  Blob<int>* argmax() { return &this->argmax_; }
};

typedef shared_ptr<Layer<float> > LayerPtr;

// The device under test: the Caffe mode its layers run in and how to make each layer.
struct Device {
  const char* name;
  Caffe::Brew mode;
  LayerPtr (*roi_align)(const LayerParameter&);           // a ProbeROIAlign
  LayerPtr (*pyramid_roi_align)(const LayerParameter&);   // a ProbePyramidROIAlign
  LayerPtr (*roi_pooling)(const LayerParameter&);         // a ProbeROIPooling
  LayerPtr (*smooth_l1_loss)(const LayerParameter&);
};

template <typename L>
LayerPtr Make(const LayerParameter& p) { return LayerPtr(new L(p)); }

// What one implementation produced: top[0] data, the diffs of the bottoms that propagate
// (concatenated), and the argmaxes of a MAX layer (empty otherwise).
struct RoiRun {
  vector<float> top, grad;
  vector<int> argmax;
};

inline Blob<int>* AlignArgmax(Layer<float>* l) {
  return static_cast<ProbeROIAlign*>(l)->argmax();
}
inline Blob<int>* PyramidArgmax(Layer<float>* l) {
  return static_cast<ProbePyramidROIAlign*>(l)->argmax();
}
inline Blob<int>* PoolArgmax(Layer<float>* l) {
  return static_cast<ProbeROIPooling*>(l)->argmax();
}

// Runs `layer` in `mode` on private copies of `inputs` and a private top: SetUp, top (and
// argmax) poisoned, Forward, top diff = `top_diff` (or 1 for a scalar loss), bottom diffs
// poisoned with NaN, Backward.
inline RoiRun RunRoiLayer(const LayerPtr& layer, Blob<int>* (*argmax_of)(Layer<float>*),
    Caffe::Brew mode, const vector<const Blob<float>*>& inputs, const vector<bool>& down,
    const vector<float>& top_diff) {
  Caffe::set_mode(mode);
  vector<Blob<float>*> bottom;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bottom.push_back(new Blob<float>(inputs[i]->shape()));
    bottom.back()->CopyFrom(*inputs[i]);
  }
  Blob<float> top;
  vector<Blob<float>*> tops(1, &top);
  layer->SetUp(bottom, tops);
  caffe_set(top.count(), kNaN, top.mutable_cpu_data());
  Blob<int>* am = argmax_of ? argmax_of(layer.get()) : NULL;
  if (am) caffe_set(am->count(), kArgmaxSentinel, am->mutable_cpu_data());
  layer->Forward(bottom, tops);
  RoiRun run;
  run.top.assign(top.cpu_data(), top.cpu_data() + top.count());
  if (am) run.argmax.assign(am->cpu_data(), am->cpu_data() + am->count());
  float* td = top.mutable_cpu_diff();
  for (int i = 0; i < top.count(); ++i) td[i] = top_diff.empty() ? 1 : top_diff[i];
  for (size_t i = 0; i < bottom.size(); ++i) {
    if (down[i]) caffe_set(bottom[i]->count(), kNaN, bottom[i]->mutable_cpu_diff());
  }
  layer->Backward(tops, down, bottom);
  for (size_t i = 0; i < bottom.size(); ++i) {
    if (down[i]) {
      run.grad.insert(run.grad.end(), bottom[i]->cpu_diff(),
          bottom[i]->cpu_diff() + bottom[i]->count());
    }
    delete bottom[i];
  }
  Caffe::set_mode(Caffe::CPU);
  return run;
}

// The elements that fail !(|a - b| <= tol[i]) (NaN fails); all of them if the sizes differ.
inline vector<int> Mismatches(const vector<float>& ref, const vector<float>& got,
    const vector<double>& tol) {
  vector<int> bad;
  for (size_t i = 0; i < std::max(ref.size(), got.size()); ++i) {
    const double d = i < ref.size() && i < got.size()
        ? std::fabs(static_cast<double>(ref[i]) - got[i]) : kNaN;
    if (!(d <= tol[i < tol.size() ? i : 0])) bad.push_back(static_cast<int>(i));
  }
  return bad;
}

// Counts every element that fails !(|a - b| <= tol[i]) (NaN fails), reports the first few.
inline int CountMismatches(const vector<float>& ref, const vector<float>& got,
    const vector<double>& tol, const std::string& what) {
  EXPECT_EQ(ref.size(), got.size()) << what;
  if (ref.size() != got.size()) return 1;
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(ref[i]) - got[i]);
    if (!(d <= tol[i])) {
      if (++bad <= 5) {
        ADD_FAILURE() << what << " element " << i << ": reference " << ref[i] << ", got "
            << got[i] << ", |difference| " << d << " > tolerance " << tol[i];
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << ref.size() << " elements differ";
  return bad;
}

// Forward and argmax exact, backward within grad_tol (per element).
inline void ExpectAgree(const RoiRun& ref, const RoiRun& got, const vector<double>& grad_tol,
    const std::string& what) {
  CountMismatches(ref.top, got.top, vector<double>(ref.top.size(), 0), what + " forward");
  EXPECT_TRUE(ref.argmax == got.argmax) << what << ": argmaxes differ";
  CountMismatches(ref.grad, got.grad, grad_tol, what + " backward");
}

// Per-element backward tolerance from the terms each element receives: for n terms x_i,
// two summation orders differ by at most 2 gamma(n - 1) sum |x_i|, gamma(k) = k u / (1 - k u),
// u = 2^-24 (float). One term (or none): 0, the results must be equal.
struct TermStats {
  vector<double> mag;
  vector<int> count;
  explicit TermStats(int n) : mag(n, 0), count(n, 0) {}
  vector<double> Tolerance() const {
    const double u = FLT_EPSILON / 2;
    vector<double> tol(mag.size(), 0);
    for (size_t i = 0; i < mag.size(); ++i) {
      const double k = count[i] > 1 ? count[i] - 1 : 0;
      tol[i] = 2 * k * u / (1 - k * u) * mag[i];
    }
    return tol;
  }
};

struct RecordTerm {
  float* base;
  TermStats* stats;
  void operator()(float* a, float v) const {
    const int i = static_cast<int>(a - base);
    stats->mag[i] += std::fabs(v);
    ++stats->count[i];
  }
};

struct HostTaps {
  float start, bin;
  int pooled_index, grid, size, bi_type, alignment;
  roi_align::Taps<float> operator()(int i) const {
    return roi_align::sample_taps(start, bin, pooled_index, i, grid, size, bi_type,
        alignment);
  }
};

// The gradient terms of RoIAlign from the geometry header (the code both sides run) and the
// reference run's argmaxes: RoI n pooled from maps[level[n]] at scales[level[n]]. The
// tolerances follow the maps' order (the order RunRoiLayer concatenates their diffs in).
inline vector<double> AlignGradTolerance(const ROIPoolingParameter& rp,
    const vector<const Blob<float>*>& maps, const vector<float>& scales,
    const vector<int>& level, const Blob<float>& rois, const vector<float>& top_diff,
    const vector<int>& argmax) {
  vector<int> first(maps.size() + 1, 0);
  for (size_t l = 0; l < maps.size(); ++l) first[l + 1] = first[l] + maps[l]->count();
  const int channels = maps[0]->channels();
  TermStats stats(first.back());
  vector<float> scratch(first.back());
  const RecordTerm add = {scratch.data(), &stats};
  roi_align::Params<float> common = roi_align::ParamsFrom<float>(rp, 0, 0);
  roi_align::with_tap_count(common.bi_type, [&](auto taps) {
    const int K = decltype(taps)::value;
    int o = 0;
    for (int n = 0; n < rois.num(); ++n) {
      const int l = level[n];
      roi_align::Params<float> p = common;
      p.height = maps[l]->height();
      p.width = maps[l]->width();
      p.spatial_scale = scales[l];
      const float* roi = rois.cpu_data() + n * 5;
      const roi_align::Box<float> b = roi_align::roi_box(roi, p);
      for (int c = 0; c < channels; ++c) {
        float* out = scratch.data() + first[l]
            + (static_cast<int>(roi[0]) * channels + c) * p.height * p.width;
        for (int ph = 0; ph < p.pooled_h; ++ph) {
          for (int pw = 0; pw < p.pooled_w; ++pw, ++o) {
            const HostTaps ty = {b.start_h, b.bin_h, ph, b.grid_h, p.height, p.bi_type,
                p.alignment};
            const HostTaps tx = {b.start_w, b.bin_w, pw, b.grid_w, p.width, p.bi_type,
                p.alignment};
            roi_align::scatter_bin<K>(out, p.width, b.grid_h, b.grid_w, p.is_max,
                p.is_max ? argmax[o] : -1, top_diff[o], ty, tx, add);
          }
        }
      }
    }
  });
  return stats.Tolerance();
}

// ROIPooling: each output adds its top diff at its argmax.
inline vector<double> ROIPoolingGradTolerance(const Blob<float>& data,
    const Blob<float>& rois, const vector<float>& top_diff, const vector<int>& argmax,
    int bins) {
  const int channels = data.channels(), plane = data.height() * data.width();
  TermStats stats(data.count());
  for (size_t o = 0; o < argmax.size(); ++o) {
    if (argmax[o] < 0) continue;
    const int nc = o / bins;
    const int batch = static_cast<int>(rois.cpu_data()[(nc / channels) * 5]);
    const int i = (batch * channels + nc % channels) * plane + argmax[o];
    stats.mag[i] += std::fabs(top_diff[o]);
    ++stats.count[i];
  }
  return stats.Tolerance();
}

// The inputs: data (2, 16, 23, 31) at spatial scale 1/16 (images of 368 x 496 pixels), a
// four-level pyramid of the same images (scales 1/4 ... 1/32), RoIs and a top diff.
class Inputs {
 public:
  static const int kRois = 700;  // x 16 channels x 7 x 7: hundreds of full 512-thread blocks

  Inputs() : data_(2, 16, 23, 31), rois_(kRois, 5, 1, 1) {
    Caffe::set_random_seed(1701);
    FillerParameter fp;
    fp.set_std(1);
    GaussianFiller<float> filler(fp);
    filler.Fill(&data_);
    const int sizes[4][2] = {{92, 124}, {46, 62}, {23, 31}, {12, 16}};
    for (int l = 0; l < 4; ++l) {
      levels_.push_back(new Blob<float>(2, 16, sizes[l][0], sizes[l][1]));
      filler.Fill(levels_.back());
      scales_.push_back(1.0f / (4 << l));
    }
    std::mt19937 rng(20161);
    std::uniform_real_distribution<float> u01(0, 1);
    const float img_h = 368, img_w = 496;
    float* r = rois_.mutable_cpu_data();
    for (int i = 0; i < kRois; ++i) {
      float* q = r + i * 5;
      q[0] = i % 2;
      const int kind = i % 10;
      if (kind < 5) {  // proposal-like: inside the image, 8 to 400 pixels
        const float w = 8 + 392 * u01(rng), h = 8 + 392 * u01(rng);
        q[1] = (img_w - w) * u01(rng);
        q[2] = (img_h - h) * u01(rng);
        q[3] = std::min(q[1] + w, img_w - 1);
        q[4] = std::min(q[2] + h, img_h - 1);
      } else if (kind < 7) {  // partly or wholly off the map
        for (int k = 1; k < 5; ++k) q[k] = -300 + 1100 * u01(rng);
        q[3] = std::max(q[3], q[1]);
        q[4] = std::max(q[4], q[2]);
      } else if (kind == 7) {  // tiny: a point or under a pixel, often on the last row/col
        q[1] = u01(rng) < 0.5 ? img_w - 1 : img_w * u01(rng);
        q[2] = u01(rng) < 0.5 ? img_h - 1 : img_h * u01(rng);
        q[3] = q[1] + (i % 20 == 7 ? 0 : 0.5f * u01(rng));
        q[4] = q[2] + (i % 20 == 7 ? 0 : 0.5f * u01(rng));
      } else if (kind == 8) {  // swapped corners (x2 < x1, y2 < y1)
        q[3] = img_w * u01(rng);
        q[4] = img_h * u01(rng);
        q[1] = q[3] + 50 * u01(rng);
        q[2] = q[4] + 50 * u01(rng);
      } else {  // huge: up to ~4x the image, around it
        q[1] = -800 * u01(rng);
        q[2] = -800 * u01(rng);
        q[3] = img_w + 800 * u01(rng);
        q[4] = img_h + 800 * u01(rng);
      }
    }
    r[13 * 5 + 2] = kNaN;  // non-finite coordinates: zeros, no gradient
    r[23 * 5 + 3] = std::numeric_limits<float>::infinity();
    top_diff_.resize(kRois * 16 * 14 * 14);
    std::normal_distribution<float> g(0, 1);
    for (size_t i = 0; i < top_diff_.size(); ++i) top_diff_[i] = g(rng);
  }
  ~Inputs() {
    for (size_t l = 0; l < levels_.size(); ++l) delete levels_[l];
  }

  LayerParameter Param(const char* type) const {
    LayerParameter p;
    p.set_name("roi_agreement");
    p.set_type(type);
    if (std::string(type) == "PyramidROIAlign") {
      p.add_bottom("rois");
      for (size_t l = 0; l < levels_.size(); ++l) {
        p.add_bottom("p" + std::to_string(l + 2));
        p.mutable_pyramid_roi_param()->add_spatial_scale(scales_[l]);
      }
    } else {
      p.add_bottom("data");
      p.add_bottom("rois");
      p.mutable_roi_pooling_param()->set_spatial_scale(1.0 / 16);
    }
    p.mutable_roi_pooling_param()->set_pooled_h(7);
    p.mutable_roi_pooling_param()->set_pooled_w(7);
    return p;
  }
  vector<const Blob<float>*> Single() const {
    vector<const Blob<float>*> in;
    in.push_back(&data_);
    in.push_back(&rois_);
    return in;
  }
  vector<const Blob<float>*> Pyramid() const {
    vector<const Blob<float>*> in(1, &rois_);
    in.insert(in.end(), levels_.begin(), levels_.end());
    return in;
  }

  Blob<float> data_, rois_;
  vector<Blob<float>*> levels_;
  vector<float> scales_;
  vector<float> top_diff_;

  DISABLE_COPY_AND_ASSIGN(Inputs);
};

// Every sampling configuration the layers accept: pool x bi_type x grid x alignment x
// pad_ratio (bicubic only with the centred alignments, BIN_CORNERS without adaptive grids).
template <typename F>
void ForEachAlignConfig(LayerParameter p, const F& check) {
  const int grids[][2] = {{-1, 1}, {-1, 0}, {0, 1}, {3, 1}};
  for (int pool = 0; pool < 2; ++pool)
  for (int bi = 0; bi < 2; ++bi)
  for (int g = 0; g < 4; ++g)
  for (int align = 0; align < 5; ++align)
  for (int pad = 0; pad < 2; ++pad) {
    if (bi == 1 && roi_align::corner_samples(align)) continue;
    if (align == roi_align::kBinCorners && grids[g][0] == 0) continue;
    ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
    rp->set_pool(static_cast<ROIPoolingParameter_PoolMethod>(pool));
    rp->set_bi_type(bi);
    rp->set_sampling_ratio(grids[g][0]);
    rp->set_is_multi_interpolate(grids[g][1]);
    rp->set_alignment(static_cast<ROIPoolingParameter_Alignment>(align));
    rp->set_pad_ratio(pad ? 0.1 : 0);
    check(p);
  }
}

inline void CheckROIAlign(const Device& dev, const Inputs& in) {
  const vector<bool> down{true, false};
  ForEachAlignConfig(in.Param("ROIAlign"), [&](const LayerParameter& p) {
    const std::string what = std::string(dev.name) + " ROIAlign "
        + p.roi_pooling_param().ShortDebugString();
    const RoiRun ref = RunRoiLayer(Make<ProbeROIAlign>(p), AlignArgmax, Caffe::CPU,
        in.Single(), down, in.top_diff_);
    const RoiRun got = RunRoiLayer(dev.roi_align(p), AlignArgmax, dev.mode, in.Single(),
        down, in.top_diff_);
    ExpectAgree(ref, got, AlignGradTolerance(p.roi_pooling_param(), {&in.data_},
        {1.0f / 16}, vector<int>(in.rois_.num(), 0), in.rois_, in.top_diff_, ref.argmax),
        what);
  });
}

// Every level rule x alignment (and both pools); the levels from the reference layer.
inline void CheckPyramidROIAlign(const Device& dev, const Inputs& in) {
  vector<bool> down(in.levels_.size() + 1, true);
  down[0] = false;
  const vector<const Blob<float>*> maps(in.levels_.begin(), in.levels_.end());
  for (int rule = 0; rule < 4; ++rule)
  for (int align = 0; align < 5; ++align)
  for (int pool = 0; pool < 2; ++pool) {
    LayerParameter p = in.Param("PyramidROIAlign");
    p.mutable_pyramid_roi_param()->set_level_rule(
        static_cast<PyramidROIParameter_LevelRule>(rule));
    p.mutable_roi_pooling_param()->set_alignment(
        static_cast<ROIPoolingParameter_Alignment>(align));
    p.mutable_roi_pooling_param()->set_pool(
        static_cast<ROIPoolingParameter_PoolMethod>(pool));
    const std::string what = std::string(dev.name) + " PyramidROIAlign "
        + p.pyramid_roi_param().ShortDebugString() + " "
        + p.roi_pooling_param().ShortDebugString();
    vector<int> level(in.rois_.num());
    const RoiRun ref = RunRoiLayer(Make<ProbePyramidROIAlign>(p), PyramidArgmax, Caffe::CPU,
        in.Pyramid(), down, in.top_diff_);
    for (int n = 0; n < in.rois_.num(); ++n) {
      const float* r = in.rois_.cpu_data() + n * 5;
      level[n] = roi_align::PyramidLevel(r[1], r[2], r[3], r[4], p.pyramid_roi_param(), 4);
    }
    const RoiRun got = RunRoiLayer(dev.pyramid_roi_align(p), PyramidArgmax, dev.mode,
        in.Pyramid(), down, in.top_diff_);
    ExpectAgree(ref, got, AlignGradTolerance(p.roi_pooling_param(), maps, in.scales_, level,
        in.rois_, in.top_diff_, ref.argmax), what);
  }
}

inline void CheckROIPooling(const Device& dev, const Inputs& in) {
  const vector<bool> down{true, false};
  const LayerParameter p = in.Param("ROIPooling");
  const RoiRun ref = RunRoiLayer(Make<ProbeROIPooling>(p), PoolArgmax, Caffe::CPU, in.Single(),
      down, in.top_diff_);
  const RoiRun got = RunRoiLayer(dev.roi_pooling(p), PoolArgmax, dev.mode, in.Single(), down,
      in.top_diff_);
  ExpectAgree(ref, got, ROIPoolingGradTolerance(in.data_, in.rois_, in.top_diff_, ref.argmax,
      49), std::string(dev.name) + " ROIPooling");
}

inline LayerParameter SmoothL1Param() {
  LayerParameter p;
  p.set_name("loss_agreement");
  p.set_type("SmoothL1Loss");
  p.mutable_smooth_l1_loss_param()->set_sigma(3);
  return p;
}

inline void CheckSmoothL1(const Device& dev) {
  Blob<float> pred(64, 84, 1, 1), target(64, 84, 1, 1), in(64, 84, 1, 1), out(64, 84, 1, 1);
  Caffe::set_random_seed(1702);
  FillerParameter fp;
  fp.set_std(2);
  GaussianFiller<float> filler(fp);
  filler.Fill(&pred);
  filler.Fill(&target);
  UniformFiller<float> weights((FillerParameter()));
  weights.Fill(&in);
  weights.Fill(&out);
  const vector<const Blob<float>*> inputs{&pred, &target, &in, &out};
  const vector<bool> down{true, true, false, false};
  const LayerParameter p = SmoothL1Param();
  const vector<float> loss_weight(1, 0.5f);
  const RoiRun ref = RunRoiLayer(Make<SmoothL1LossLayer<float> >(p), NULL, Caffe::CPU, inputs,
      down, loss_weight);
  const RoiRun got = RunRoiLayer(dev.smooth_l1_loss(p), NULL, dev.mode, inputs, down,
      loss_weight);
  // The loss sums n = 5376 non-negative errors (a dot product, in another order on the GPU);
  // each error and each gradient element is the same arithmetic on both sides.
  const double n = pred.count(), u = FLT_EPSILON / 2;
  const double loss_tol = 2 * (n - 1) * u / (1 - (n - 1) * u) * std::fabs(ref.top[0])
      + 2 * u * std::fabs(ref.top[0]);  // and the division by num
  const std::string what = std::string(dev.name) + " SmoothL1Loss";
  CountMismatches(ref.top, got.top, vector<double>(1, loss_tol), what + " forward");
  CountMismatches(ref.grad, got.grad, vector<double>(ref.grad.size(), 0), what + " backward");
}

// No kernel is launched with a count of 0 (zero blocks: "invalid configuration argument"):
// zero RoIs, zero channels, a pyramid level no RoI reaches.
inline void CheckZeroSizes(const Device& dev, Inputs* in) {
  const vector<bool> down{true, false};
  vector<bool> pyramid_down(in->levels_.size() + 1, true);
  pyramid_down[0] = false;
  in->rois_.Reshape(std::vector<int>{0, 5});
  const RoiRun a = RunRoiLayer(dev.roi_align(in->Param("ROIAlign")), AlignArgmax, dev.mode,
      in->Single(), down, in->top_diff_);
  const RoiRun p = RunRoiLayer(dev.roi_pooling(in->Param("ROIPooling")), PoolArgmax,
      dev.mode, in->Single(), down, in->top_diff_);
  const RoiRun y = RunRoiLayer(dev.pyramid_roi_align(in->Param("PyramidROIAlign")),
      PyramidArgmax, dev.mode, in->Pyramid(), pyramid_down, in->top_diff_);
  EXPECT_EQ(a.top.size(), 0u);
  EXPECT_EQ(p.top.size(), 0u);
  EXPECT_EQ(y.top.size(), 0u);
  for (size_t i = 0; i < a.grad.size(); ++i) ASSERT_EQ(a.grad[i], 0) << i;
  for (size_t i = 0; i < p.grad.size(); ++i) ASSERT_EQ(p.grad[i], 0) << i;
  for (size_t i = 0; i < y.grad.size(); ++i) ASSERT_EQ(y.grad[i], 0) << i;
  in->data_.Reshape(2, 0, 23, 31);
  in->rois_.Reshape(std::vector<int>{1, 5});
  caffe_set(5, 0.f, in->rois_.mutable_cpu_data());
  EXPECT_EQ(RunRoiLayer(dev.roi_align(in->Param("ROIAlign")), AlignArgmax, dev.mode,
      in->Single(), down, in->top_diff_).top.size(), 0u);
  EXPECT_EQ(RunRoiLayer(dev.roi_pooling(in->Param("ROIPooling")), PoolArgmax, dev.mode,
      in->Single(), down, in->top_diff_).top.size(), 0u);
  // SmoothL1Loss over zero elements is 0, with an empty diff; also after a non-empty batch
  // (a cached ones vector).
  const vector<bool> loss_down{true, true, false, false};
  Blob<float> full(4, 8, 1, 1), empty(std::vector<int>{0, 8});
  caffe_set(full.count(), 0.5f, full.mutable_cpu_data());
  const vector<const Blob<float>*> f{&full, &full, &full, &full};
  const vector<const Blob<float>*> e{&empty, &empty, &empty, &empty};
  const LayerPtr loss = dev.smooth_l1_loss(SmoothL1Param());
  RunRoiLayer(loss, NULL, dev.mode, f, loss_down, vector<float>());
  const RoiRun l = RunRoiLayer(loss, NULL, dev.mode, e, loss_down, vector<float>());
  ASSERT_EQ(l.top.size(), 1u);
  EXPECT_EQ(l.top[0], 0) << dev.name;
  EXPECT_EQ(l.grad.size(), 0u);
}

}  // namespace roi_agreement
}  // namespace caffe

#endif  // CAFFE_TEST_ROI_LAYER_AGREEMENT_HPP_
