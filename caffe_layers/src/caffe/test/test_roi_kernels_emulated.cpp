// The RoI layers' CUDA kernels, compiled as host code and run under the host emulation of
// roi_device.cuh (every thread of every block in turn, blocks in a shuffled order, atomics as
// plain adds in that order), against the layers' CPU code: the same checks that
// test_roi_layers_gpu.cpp runs on a real GPU (caffe/test/roi_layer_agreement.hpp), so every
// build, CPU-only included, runs the kernel sources. This proves the kernels' indexing,
// geometry, guards and launches; it does not replace a GPU run (scripts/gpu_check.sh).
#define ROI_HOST_EMULATION

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/layers/roi_align_kernels.cuh"
#include "caffe/layers/roi_pooling_kernels.cuh"
#include "caffe/layers/smooth_l1_kernels.cuh"
#include "caffe/test/roi_layer_agreement.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

namespace {

using roi_agreement::Make;
using roi_agreement::ProbeROIAlign;

// A layer (Base: one of the probes, or SmoothL1LossLayer) with its CPU passes replaced by its
// device passes run on the emulated device D.
template <typename Base, typename D = HostEmulatedDevice>
class Emulated : public Base {
 public:
  explicit Emulated(const LayerParameter& p) : Base(p) {}

 protected:
  void Forward_cpu(const vector<Blob<float>*>& bottom, const vector<Blob<float>*>& top) {
    this->ForwardOn(D(), bottom, top);
  }
  void Backward_cpu(const vector<Blob<float>*>& top, const vector<bool>& down,
      const vector<Blob<float>*>& bottom) {
    this->BackwardOn(D(), top, down, bottom);
  }
};

const roi_agreement::Device kEmulated = {"emulated GPU", Caffe::CPU,
    Make<Emulated<ProbeROIAlign> >,
    Make<Emulated<roi_agreement::ProbePyramidROIAlign> >,
    Make<Emulated<roi_agreement::ProbeROIPooling> >, Make<Emulated<SmoothL1LossLayer<float> > >};

class RoiKernelsEmulatedTest : public ::testing::Test {
 protected:
  roi_agreement::Inputs in_;
};

TEST_F(RoiKernelsEmulatedTest, ROIAlignAgreesInEveryMode) {
  roi_agreement::CheckROIAlign(kEmulated, in_);
}

TEST_F(RoiKernelsEmulatedTest, PyramidROIAlignAgrees) {
  roi_agreement::CheckPyramidROIAlign(kEmulated, in_);
}

TEST_F(RoiKernelsEmulatedTest, ROIPoolingAgrees) {
  roi_agreement::CheckROIPooling(kEmulated, in_);
}

TEST_F(RoiKernelsEmulatedTest, SmoothL1Agrees) {
  roi_agreement::CheckSmoothL1(kEmulated);
}

// The emulated launcher fails on a count of 0, as CUDA would: zero RoIs, zero channels and
// zero elements must launch nothing.
TEST_F(RoiKernelsEmulatedTest, ZeroSizesLaunchNothing) {
  roi_agreement::CheckZeroSizes(kEmulated, &in_);
}

// The checks can fail. A device that leaves out the last block of each launch leaves
// poisoned outputs and gradients behind; and the shuffled block order does make the emulated
// atomics add in another order than the CPU (some gradients differ in the last bits), so the
// backward tolerance is what passes them, not luck.
struct DropsLastBlock : public HostEmulatedDevice {
  template <typename... KernelArgs, typename... Args>
  static void launch(void (*kernel)(KernelArgs...), int count, Args... args) {
    launch_dropping(1, kernel, count, args...);
  }
};

TEST_F(RoiKernelsEmulatedTest, ChecksCatchABrokenKernel) {
  using roi_agreement::AlignArgmax;
  using roi_agreement::RoiRun;
  using roi_agreement::RunRoiLayer;
  const vector<bool> down{true, false};
  LayerParameter p = in_.Param("ROIAlign");
  p.mutable_roi_pooling_param()->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  const RoiRun ref = RunRoiLayer(Make<ProbeROIAlign>(p), AlignArgmax,
      Caffe::CPU, in_.Single(), down, in_.top_diff_);
  const RoiRun broken = RunRoiLayer(Make<Emulated<ProbeROIAlign, DropsLastBlock> >(p), AlignArgmax,
      Caffe::CPU, in_.Single(), down, in_.top_diff_);
  const vector<int> bad_top = roi_agreement::Mismatches(ref.top, broken.top,
      vector<double>(ref.top.size(), 0));
  EXPECT_GE(bad_top.size(), 1u);
  EXPECT_LE(bad_top.size(), 512u);  // one block of outputs
  for (size_t i = 0; i < bad_top.size(); ++i) EXPECT_TRUE(std::isnan(broken.top[bad_top[i]]));
  const RoiRun good = RunRoiLayer(Make<Emulated<ProbeROIAlign> >(p), AlignArgmax, Caffe::CPU,
      in_.Single(), down, in_.top_diff_);
  EXPECT_EQ(roi_agreement::Mismatches(ref.top, good.top, vector<double>(1, 0)).size(), 0u);
  const size_t reordered = roi_agreement::Mismatches(ref.grad, good.grad,
      vector<double>(1, 0)).size();
  EXPECT_GT(reordered, 0u) << "the emulated atomics added in the CPU's own order";
  const vector<double> tol = roi_agreement::AlignGradTolerance(p.roi_pooling_param(),
      {&in_.data_}, {1.0f / 16}, vector<int>(in_.rois_.num(), 0), in_.rois_, in_.top_diff_,
      ref.argmax);
  EXPECT_EQ(roi_agreement::Mismatches(ref.grad, good.grad, tol).size(), 0u);
  std::printf("emulated ROIAlign AVE backward: %zu of %zu gradient elements differ from the "
      "CPU's (atomics in another order), all within the tolerance\n", reordered,
      ref.grad.size());
}

}  // namespace

}  // namespace caffe
