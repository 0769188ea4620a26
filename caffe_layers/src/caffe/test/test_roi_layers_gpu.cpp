// The RoI layers' GPU code against their CPU code on a real device (CUDA builds; skipped when
// no device is present): the checks of caffe/test/roi_layer_agreement.hpp, which
// test_roi_kernels_emulated.cpp also runs on the host emulation of the same kernels.
#ifndef CPU_ONLY

#include <cstdio>

#include "gtest/gtest.h"

#include "caffe/test/roi_layer_agreement.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

namespace {

using roi_agreement::Make;

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

const roi_agreement::Device kGpu = {"GPU", Caffe::GPU,
    Make<roi_agreement::ProbeROIAlign>, Make<roi_agreement::ProbePyramidROIAlign>,
    Make<roi_agreement::ProbeROIPooling>, Make<SmoothL1LossLayer<float> >};

class RoiGpuTest : public ::testing::Test {
 protected:
  roi_agreement::Inputs in_;
};

TEST_F(RoiGpuTest, ROIAlignCpuGpuAgreeInEveryMode) {
  REQUIRE_GPU();
  roi_agreement::CheckROIAlign(kGpu, in_);
}

TEST_F(RoiGpuTest, PyramidROIAlignCpuGpuAgree) {
  REQUIRE_GPU();
  roi_agreement::CheckPyramidROIAlign(kGpu, in_);
}

TEST_F(RoiGpuTest, ROIPoolingCpuGpuAgree) {
  REQUIRE_GPU();
  roi_agreement::CheckROIPooling(kGpu, in_);
}

TEST_F(RoiGpuTest, SmoothL1CpuGpuAgree) {
  REQUIRE_GPU();
  roi_agreement::CheckSmoothL1(kGpu);
}

TEST_F(RoiGpuTest, ZeroSizesOnGpu) {
  REQUIRE_GPU();
  roi_agreement::CheckZeroSizes(kGpu, &in_);
  EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
}

}  // namespace

}  // namespace caffe

#endif  // CPU_ONLY
