// GPU-only checks of the RoI layers (CUDA builds; skipped when no device is present): the GPU
// code of ROIAlign (every configuration), ROIPooling and SmoothL1Loss against their CPU code,
// forward and backward, under the floating-point policy of roi_align_geometry.hpp:
//  * forward outputs and MAX argmaxes equal bit for bit (same IEEE arithmetic, --fmad=false);
//  * backward within 2 (n - 1) u sum |terms| per element, n the number of gradient terms the
//    element receives (atomics add them in another order), computed here on the host from the
//    same geometry; an element with one term must be equal.
// The test can fail: CPU and GPU run on separate layers and blobs, the GPU's top, argmax and
// bottom diffs are filled with NaN / -7 before each pass (a pass that writes nothing fails),
// and every element is compared as !(|a - b| <= tol), so NaN fails. Seeds are fixed; the RoIs
// are proposal-like plus adversarial ones (off the map, tiny, huge, swapped, non-finite).
// RunRoiLayer / ExpectAgree / the *GradTolerance functions take any two result sets, so the
// same body can compare the CPU with a host emulation of the kernels.
#ifndef CPU_ONLY

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/roi_align_geometry.hpp"
#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

namespace {

bool HaveGpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// Caffe's bundled gtest predates GTEST_SKIP.
#define REQUIRE_GPU() \
  if (!HaveGpu()) { \
    std::printf("[  SKIPPED ] no CUDA device\n"); \
    return; \
  }

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const int kArgmaxSentinel = -7;

// The argmax blobs of the MAX layers, for comparison.
class ProbeROIAlign : public ROIAlignLayer<float> {
 public:
  explicit ProbeROIAlign(const LayerParameter& p) : ROIAlignLayer<float>(p) {}
  Blob<int>* argmax() { return this->params_.is_max ? &this->argmax_ : NULL; }
};

class ProbeROIPooling : public ROIPoolingLayer<float> {
 public:
  explicit ProbeROIPooling(const LayerParameter& p) : ROIPoolingLayer<float>(p) {}
  Blob<int>* argmax() { return &this->argmax_; }
};

// What one implementation produced: top[0] data, the diffs of the bottoms that propagate
// (concatenated), and the argmaxes of a MAX layer (empty otherwise).
struct RoiRun {
  vector<float> top, grad;
  vector<int> argmax;
};

// Runs `layer` in `mode` on private copies of `inputs` and a private top: SetUp, top (and
// argmax) poisoned, Forward, top diff = `top_diff` (or 1 for a scalar loss), bottom diffs
// poisoned with NaN, Backward.
RoiRun RunRoiLayer(Layer<float>* layer, Blob<int>* (*argmax_of)(Layer<float>*),
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
  Blob<int>* am = argmax_of ? argmax_of(layer) : NULL;
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
  return run;
}

Blob<int>* AlignArgmax(Layer<float>* l) { return static_cast<ProbeROIAlign*>(l)->argmax(); }
Blob<int>* PoolArgmax(Layer<float>* l) { return static_cast<ProbeROIPooling*>(l)->argmax(); }

// Counts every element that fails !(|a - b| <= tol[i]) (NaN fails), reports the first few.
int CountMismatches(const vector<float>& ref, const vector<float>& got,
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
void ExpectAgree(const RoiRun& ref, const RoiRun& got, const vector<double>& grad_tol,
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
  int pooled_index, grid, size, bi_type;
  roi_align::Taps<float> operator()(int i) const {
    return roi_align::make_taps(roi_align::sample_coord(start, bin, pooled_index, i, grid),
        size, bi_type);
  }
};

// The gradient terms of ROIAlign, from the geometry header (the code both sides run) and
// the reference run's argmaxes.
vector<double> ROIAlignGradTolerance(const ROIPoolingParameter& rp, const Blob<float>& data,
    const Blob<float>& rois, const vector<float>& top_diff, const vector<int>& argmax) {
  const roi_align::Params<float> p =
      roi_align::ParamsFrom<float>(rp, data.height(), data.width());
  const int channels = data.channels(), plane = p.height * p.width;
  TermStats stats(data.count());
  vector<float> scratch(data.count());
  const RecordTerm add = {scratch.data(), &stats};
  roi_align::with_tap_count(p.bi_type, [&](auto taps) {
    const int K = decltype(taps)::value;
    int o = 0;
    for (int n = 0; n < rois.num(); ++n) {
      const float* roi = rois.cpu_data() + n * 5;
      const roi_align::Box<float> b = roi_align::roi_box(roi, p);
      for (int c = 0; c < channels; ++c) {
        float* out = scratch.data() + (static_cast<int>(roi[0]) * channels + c) * plane;
        for (int ph = 0; ph < p.pooled_h; ++ph) {
          for (int pw = 0; pw < p.pooled_w; ++pw, ++o) {
            const HostTaps ty = {b.start_h, b.bin_h, ph, b.grid_h, p.height, p.bi_type};
            const HostTaps tx = {b.start_w, b.bin_w, pw, b.grid_w, p.width, p.bi_type};
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
vector<double> ROIPoolingGradTolerance(const Blob<float>& data, const Blob<float>& rois,
    const vector<float>& top_diff, const vector<int>& argmax, int bins) {
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

// data (2, 16, 23, 31) at spatial scale 1/16: images of 368 x 496 pixels.
class RoiGpuTest : public ::testing::Test {
 protected:
  static const int kRois = 700;  // x 16 channels x 7 x 7: hundreds of full 512-thread blocks

  RoiGpuTest() : data_(2, 16, 23, 31), rois_(kRois, 5, 1, 1) {
    Caffe::set_random_seed(1701);
    FillerParameter fp;
    fp.set_std(1);
    GaussianFiller<float> filler(fp);
    filler.Fill(&data_);
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
  LayerParameter Param(const char* type) {
    LayerParameter p;
    p.set_name("roi_gpu_test");
    p.set_type(type);
    p.add_bottom("data");
    p.add_bottom("rois");
    p.mutable_roi_pooling_param()->set_pooled_h(7);
    p.mutable_roi_pooling_param()->set_pooled_w(7);
    p.mutable_roi_pooling_param()->set_spatial_scale(1.0 / 16);
    return p;
  }
  vector<const Blob<float>*> Inputs() const {
    vector<const Blob<float>*> in;
    in.push_back(&data_);
    in.push_back(&rois_);
    return in;
  }

  Blob<float> data_, rois_;
  vector<float> top_diff_;
};

TEST_F(RoiGpuTest, ROIAlignCpuGpuAgreeInEveryMode) {
  REQUIRE_GPU();
  const int grids[][2] = {{-1, 1}, {-1, 0}, {0, 1}, {3, 1}};
  const vector<bool> down{true, false};
  for (int pool = 0; pool < 2; ++pool)
  for (int bi = 0; bi < 2; ++bi)
  for (int g = 0; g < 4; ++g)
  for (int align = 0; align < 3; ++align)
  for (int pad = 0; pad < 2; ++pad) {
    LayerParameter p = Param("ROIAlign");
    ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
    rp->set_pool(static_cast<ROIPoolingParameter_PoolMethod>(pool));
    rp->set_bi_type(bi);
    rp->set_sampling_ratio(grids[g][0]);
    rp->set_is_multi_interpolate(grids[g][1]);
    rp->set_alignment(static_cast<ROIPoolingParameter_Alignment>(align));
    rp->set_pad_ratio(pad ? 0.1 : 0);
    const std::string what = rp->ShortDebugString();
    ProbeROIAlign cpu(p), gpu(p);
    const RoiRun ref = RunRoiLayer(&cpu, AlignArgmax, Caffe::CPU, Inputs(), down, top_diff_);
    const RoiRun got = RunRoiLayer(&gpu, AlignArgmax, Caffe::GPU, Inputs(), down, top_diff_);
    ExpectAgree(ref, got, ROIAlignGradTolerance(*rp, data_, rois_, top_diff_, ref.argmax),
        what);
  }
}

TEST_F(RoiGpuTest, ROIPoolingCpuGpuAgree) {
  REQUIRE_GPU();
  const vector<bool> down{true, false};
  ProbeROIPooling cpu(Param("ROIPooling")), gpu(Param("ROIPooling"));
  const RoiRun ref = RunRoiLayer(&cpu, PoolArgmax, Caffe::CPU, Inputs(), down, top_diff_);
  const RoiRun got = RunRoiLayer(&gpu, PoolArgmax, Caffe::GPU, Inputs(), down, top_diff_);
  ExpectAgree(ref, got, ROIPoolingGradTolerance(data_, rois_, top_diff_, ref.argmax, 49),
      "ROIPooling");
}

TEST_F(RoiGpuTest, SmoothL1CpuGpuAgree) {
  REQUIRE_GPU();
  Blob<float> pred(64, 84, 1, 1), target(64, 84, 1, 1), in(64, 84, 1, 1), out(64, 84, 1, 1);
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
  LayerParameter p;
  p.set_name("loss_gpu_test");
  p.set_type("SmoothL1Loss");
  p.mutable_smooth_l1_loss_param()->set_sigma(3);
  SmoothL1LossLayer<float> cpu(p), gpu(p);
  const vector<float> loss_weight(1, 0.5f);
  const RoiRun ref = RunRoiLayer(&cpu, NULL, Caffe::CPU, inputs, down, loss_weight);
  const RoiRun got = RunRoiLayer(&gpu, NULL, Caffe::GPU, inputs, down, loss_weight);
  // The loss sums n = 5376 non-negative errors (cuBLAS dot on the GPU, in another order);
  // each error and each gradient element is the same arithmetic on both sides.
  const double n = pred.count(), u = FLT_EPSILON / 2;
  const double loss_tol = 2 * (n - 1) * u / (1 - (n - 1) * u) * std::fabs(ref.top[0])
      + 2 * u * std::fabs(ref.top[0]);  // and the division by num
  CountMismatches(ref.top, got.top, vector<double>(1, loss_tol), "SmoothL1Loss forward");
  CountMismatches(ref.grad, got.grad, vector<double>(ref.grad.size(), 0),
      "SmoothL1Loss backward");
}

// No kernel is launched with a count of 0 (zero blocks: "invalid configuration argument").
TEST_F(RoiGpuTest, ZeroRoisOnGpu) {
  REQUIRE_GPU();
  rois_.Reshape(std::vector<int>{0, 5});
  const vector<bool> down{true, false};
  ProbeROIAlign align(Param("ROIAlign"));
  const RoiRun a = RunRoiLayer(&align, AlignArgmax, Caffe::GPU, Inputs(), down, top_diff_);
  EXPECT_EQ(a.top.size(), 0u);
  ProbeROIPooling pool(Param("ROIPooling"));
  const RoiRun p = RunRoiLayer(&pool, PoolArgmax, Caffe::GPU, Inputs(), down, top_diff_);
  EXPECT_EQ(p.top.size(), 0u);
  for (size_t i = 0; i < a.grad.size(); ++i) ASSERT_EQ(a.grad[i], 0) << i;
  for (size_t i = 0; i < p.grad.size(); ++i) ASSERT_EQ(p.grad[i], 0) << i;
  EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
}

TEST_F(RoiGpuTest, ZeroChannelsOnGpu) {
  REQUIRE_GPU();
  data_.Reshape(2, 0, 23, 31);
  const vector<bool> down{true, false};
  ProbeROIAlign align(Param("ROIAlign"));
  EXPECT_EQ(RunRoiLayer(&align, AlignArgmax, Caffe::GPU, Inputs(), down, top_diff_)
      .top.size(), 0u);
  ProbeROIPooling pool(Param("ROIPooling"));
  EXPECT_EQ(RunRoiLayer(&pool, PoolArgmax, Caffe::GPU, Inputs(), down, top_diff_)
      .top.size(), 0u);
  EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
}

// An image whose proposal target gives no RoIs: SmoothL1Loss over zero elements is 0, with an
// empty diff, on the GPU as on the CPU; also after a non-empty batch (a cached ones vector).
TEST_F(RoiGpuTest, SmoothL1ZeroElementsOnGpu) {
  REQUIRE_GPU();
  LayerParameter p;
  p.set_name("loss_gpu_test");
  p.set_type("SmoothL1Loss");
  const vector<bool> down{true, true, false, false};
  Blob<float> full(4, 8, 1, 1), empty(std::vector<int>{0, 8});
  caffe_set(full.count(), 0.5f, full.mutable_cpu_data());
  for (int brew = 0; brew < 2; ++brew) {
    const Caffe::Brew mode = brew ? Caffe::GPU : Caffe::CPU;
    SmoothL1LossLayer<float> layer(p);
    const vector<const Blob<float>*> f{&full, &full, &full, &full};
    const vector<const Blob<float>*> e{&empty, &empty, &empty, &empty};
    RunRoiLayer(&layer, NULL, mode, f, down, vector<float>());
    const RoiRun run = RunRoiLayer(&layer, NULL, mode, e, down, vector<float>());
    ASSERT_EQ(run.top.size(), 1u);
    EXPECT_EQ(run.top[0], 0) << (brew ? "GPU" : "CPU");
    EXPECT_EQ(run.grad.size(), 0u);
  }
  EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
}

}  // namespace

}  // namespace caffe

#endif  // CPU_ONLY
