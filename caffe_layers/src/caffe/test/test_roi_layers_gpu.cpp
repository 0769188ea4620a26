// GPU-only checks of the RoI layers (CUDA builds; skipped when no device is present):
// CPU and GPU agree within 1e-5 for every ROIAlign configuration, ROIPooling and
// SmoothL1Loss, forward and backward, and every kernel launches full blocks of
// CAFFE_CUDA_NUM_THREADS threads without "too many resources requested for launch".
#ifndef CPU_ONLY

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
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

// Runs layer forward and backward (top diff = top data) in `mode`; returns top and
// bottom[0] diff.
void RunLayer(Layer<float>* layer, const vector<Blob<float>*>& bottom,
    const vector<Blob<float>*>& top, Caffe::Brew mode, vector<float>* out,
    vector<float>* grad) {
  Caffe::set_mode(mode);
  layer->SetUp(bottom, top);
  layer->Forward(bottom, top);
  caffe_copy(top[0]->count(), top[0]->cpu_data(), top[0]->mutable_cpu_diff());
  vector<bool> down(bottom.size(), false);
  down[0] = true;
  layer->Backward(top, down, bottom);
  out->assign(top[0]->cpu_data(), top[0]->cpu_data() + top[0]->count());
  grad->assign(bottom[0]->cpu_diff(), bottom[0]->cpu_diff() + bottom[0]->count());
}

void ExpectClose(const vector<float>& a, const vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  EXPECT_LE(worst, 1e-5) << what;
}

class RoiGpuTest : public ::testing::Test {
 protected:
  RoiGpuTest() : data_(2, 16, 23, 31), rois_(), top_() {
    FillerParameter fp;
    fp.set_std(1);
    GaussianFiller<float> filler(fp);
    filler.Fill(&data_);
    // 700 RoIs x 16 channels x 7 x 7 outputs: hundreds of full 512-thread blocks.
    const int n = 700;
    rois_.Reshape(n, 5, 1, 1);
    float* r = rois_.mutable_cpu_data();
    caffe_rng_uniform(n * 5, -40.f, 540.f, r);
    for (int i = 0; i < n; ++i) {
      r[i * 5] = i % 2;
      if (i % 7 == 0) std::swap(r[i * 5 + 1], r[i * 5 + 3]);  // some degenerate boxes
    }
    bottom_.push_back(&data_);
    bottom_.push_back(&rois_);
    top_vec_.push_back(&top_);
  }
  LayerParameter Param(const char* type) {
    LayerParameter p;
    p.set_name("roi_gpu_test");
    p.set_type(type);
    p.mutable_roi_pooling_param()->set_pooled_h(7);
    p.mutable_roi_pooling_param()->set_pooled_w(7);
    p.mutable_roi_pooling_param()->set_spatial_scale(1.0 / 16);
    return p;
  }

  Blob<float> data_, rois_, top_;
  vector<Blob<float>*> bottom_, top_vec_;
};

TEST_F(RoiGpuTest, ROIAlignCpuGpuAgreeInEveryMode) {
  REQUIRE_GPU();
  const int grids[][2] = {{-1, 1}, {-1, 0}, {0, 1}, {3, 1}};
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
    SCOPED_TRACE(p.roi_pooling_param().ShortDebugString());
    vector<float> cpu_out, cpu_grad, gpu_out, gpu_grad;
    ROIAlignLayer<float> cpu(p), gpu(p);
    RunLayer(&cpu, bottom_, top_vec_, Caffe::CPU, &cpu_out, &cpu_grad);
    RunLayer(&gpu, bottom_, top_vec_, Caffe::GPU, &gpu_out, &gpu_grad);
    ExpectClose(cpu_out, gpu_out, "forward");
    ExpectClose(cpu_grad, gpu_grad, "backward");
  }
}

TEST_F(RoiGpuTest, ROIPoolingCpuGpuAgree) {
  REQUIRE_GPU();
  vector<float> cpu_out, cpu_grad, gpu_out, gpu_grad;
  ROIPoolingLayer<float> cpu(Param("ROIPooling")), gpu(Param("ROIPooling"));
  RunLayer(&cpu, bottom_, top_vec_, Caffe::CPU, &cpu_out, &cpu_grad);
  RunLayer(&gpu, bottom_, top_vec_, Caffe::GPU, &gpu_out, &gpu_grad);
  ExpectClose(cpu_out, gpu_out, "forward");
  ExpectClose(cpu_grad, gpu_grad, "backward");
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
  vector<Blob<float>*> bottom{&pred, &target, &in, &out};
  Blob<float> loss;
  vector<Blob<float>*> top{&loss};
  LayerParameter p;
  p.set_type("SmoothL1Loss");
  p.mutable_smooth_l1_loss_param()->set_sigma(3);
  vector<float> cpu_out, cpu_grad, gpu_out, gpu_grad;
  SmoothL1LossLayer<float> cpu(p), gpu(p);
  RunLayer(&cpu, bottom, top, Caffe::CPU, &cpu_out, &cpu_grad);
  RunLayer(&gpu, bottom, top, Caffe::GPU, &gpu_out, &gpu_grad);
  EXPECT_NEAR(cpu_out[0], gpu_out[0], 1e-5 * std::max(1.f, std::fabs(cpu_out[0])));
  ExpectClose(cpu_grad, gpu_grad, "backward");
}

TEST_F(RoiGpuTest, ZeroRoisOnGpu) {
  REQUIRE_GPU();
  rois_.Reshape(std::vector<int>{0, 5});
  Caffe::set_mode(Caffe::GPU);
  ROIAlignLayer<float> align(Param("ROIAlign"));
  align.SetUp(bottom_, top_vec_);
  align.Forward(bottom_, top_vec_);
  EXPECT_EQ(top_.shape_string(), "0 16 7 7 (0)");
  ROIPoolingLayer<float> pool(Param("ROIPooling"));
  pool.SetUp(bottom_, top_vec_);
  pool.Forward(bottom_, top_vec_);
  vector<bool> down{true, false};
  pool.Backward(top_vec_, down, bottom_);
  align.Backward(top_vec_, down, bottom_);
  EXPECT_EQ(caffe_cpu_asum(data_.count(), data_.cpu_diff()), 0);
}

}  // namespace

}  // namespace caffe

#endif  // CPU_ONLY
