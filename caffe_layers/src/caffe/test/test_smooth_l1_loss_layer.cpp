#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/smooth_l1_loss_layer.hpp"
#include "caffe/util/math_functions.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

template <typename TypeParam>
class SmoothL1LossLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  SmoothL1LossLayerTest() : top_(new Blob<Dtype>()) {
    FillerParameter filler_param;
    filler_param.set_std(1);
    GaussianFiller<Dtype> filler(filler_param);
    UniformFiller<Dtype> weights((FillerParameter()));
    for (int i = 0; i < 4; ++i) {
      blobs_.push_back(new Blob<Dtype>(3, 8, 2, 2));
      if (i < 2) {
        filler.Fill(blobs_[i]);
      } else {
        weights.Fill(blobs_[i]);  // [0, 1)
      }
    }
    top_vec_.push_back(top_);
  }
  virtual ~SmoothL1LossLayerTest() {
    for (int i = 0; i < 4; ++i) delete blobs_[i];
    delete top_;
  }
  vector<Blob<Dtype>*> Bottom(int n) {
    return vector<Blob<Dtype>*>(blobs_.begin(), blobs_.begin() + n);
  }
  LayerParameter Param(float sigma) {
    LayerParameter p;
    p.set_name("loss_test");
    p.set_type("SmoothL1Loss");
    p.mutable_smooth_l1_loss_param()->set_sigma(sigma);
    return p;
  }

  vector<Blob<Dtype>*> blobs_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> top_vec_;
};

TYPED_TEST_CASE(SmoothL1LossLayerTest, TestDtypesAndDevices);

TYPED_TEST(SmoothL1LossLayerTest, TestForwardByHand) {
  typedef typename TypeParam::Dtype Dtype;
  Blob<Dtype> pred(2, 2, 1, 1), target(2, 2, 1, 1), in(2, 2, 1, 1), out(2, 2, 1, 1);
  const Dtype p[] = {0.25, 3, -2, 0}, t[] = {0, 0, 0, 0}, iw[] = {1, 1, 0.5, 0},
      ow[] = {1, 2, 1, 1};
  for (int i = 0; i < 4; ++i) {
    pred.mutable_cpu_data()[i] = p[i];
    target.mutable_cpu_data()[i] = t[i];
    in.mutable_cpu_data()[i] = iw[i];
    out.mutable_cpu_data()[i] = ow[i];
  }
  vector<Blob<Dtype>*> two{&pred, &target}, four{&pred, &target, &in, &out};
  // sigma 1: 0.5 * 0.25^2 + (3 - 0.5) + (2 - 0.5) + 0 = 4.03125, over num = 2.
  SmoothL1LossLayer<Dtype> l2(this->Param(1));
  l2.SetUp(two, this->top_vec_);
  l2.Forward(two, this->top_vec_);
  EXPECT_NEAR(this->top_->cpu_data()[0], 4.03125 / 2, 1e-6);
  // With weights: d = (0.25, 3, -1, 0); outside (1, 2, 1, 1):
  // 0.03125 + 2 * 2.5 + 0.5 * 1 ... |d| = 1 is not < 1, so 1 - 0.5 = 0.5.
  SmoothL1LossLayer<Dtype> l4(this->Param(1));
  l4.SetUp(four, this->top_vec_);
  l4.Forward(four, this->top_vec_);
  EXPECT_NEAR(this->top_->cpu_data()[0], (0.03125 + 5 + 0.5) / 2, 1e-6);
  // sigma 3: threshold 1/9. 0.25 -> 0.25 - 0.5/9; 3 -> (3 - 0.5/9) * 2; 1 -> 1 - 0.5/9.
  SmoothL1LossLayer<Dtype> l4s(this->Param(3));
  l4s.SetUp(four, this->top_vec_);
  l4s.Forward(four, this->top_vec_);
  EXPECT_NEAR(this->top_->cpu_data()[0],
      ((0.25 - 0.5 / 9) + 2 * (3 - 0.5 / 9) + (1 - 0.5 / 9)) / 2, 1e-5);
}

TYPED_TEST(SmoothL1LossLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  const float sigmas[] = {1, 3, 0.5};
  for (int s = 0; s < 3; ++s) {
    for (int n = 2; n <= 4; n += 2) {
      SCOPED_TRACE(::testing::Message() << "sigma " << sigmas[s] << ", bottoms " << n);
      vector<Blob<Dtype>*> bottom = this->Bottom(n);
      SmoothL1LossLayer<Dtype> layer(this->Param(sigmas[s]));
      GradientChecker<Dtype> checker(1e-3, 1e-2, 1701);
      checker.CheckGradientExhaustive(&layer, bottom, this->top_vec_, 0);
      checker.CheckGradientExhaustive(&layer, bottom, this->top_vec_, 1);
    }
  }
}

// An image whose proposal target gives no RoIs: zero elements, loss 0, nothing to propagate.
// Also after a non-empty batch (the GPU code caches a vector of ones of the last size).
TYPED_TEST(SmoothL1LossLayerTest, TestZeroElements) {
  typedef typename TypeParam::Dtype Dtype;
  for (int n = 2; n <= 4; n += 2) {
    SmoothL1LossLayer<Dtype> layer(this->Param(3));
    vector<Blob<Dtype>*> full = this->Bottom(n);
    layer.SetUp(full, this->top_vec_);
    layer.Forward(full, this->top_vec_);
    EXPECT_GT(this->top_->cpu_data()[0], 0);
    vector<Blob<Dtype>*> empty;
    for (int i = 0; i < n; ++i) empty.push_back(new Blob<Dtype>(std::vector<int>{0, 4}));
    layer.Reshape(empty, this->top_vec_);
    layer.Forward(empty, this->top_vec_);
    EXPECT_EQ(this->top_->cpu_data()[0], 0);
    this->top_->mutable_cpu_diff()[0] = 1;
    layer.Backward(this->top_vec_, vector<bool>(n, true), empty);
    EXPECT_EQ(empty[0]->count(), 0);
    for (int i = 0; i < n; ++i) delete empty[i];
  }
}

// Backward overwrites the bottom diffs, whatever they held (a NaN from an earlier pass too).
TYPED_TEST(SmoothL1LossLayerTest, TestBackwardOverwritesNaN) {
  typedef typename TypeParam::Dtype Dtype;
  vector<Blob<Dtype>*> bottom = this->Bottom(4);
  SmoothL1LossLayer<Dtype> layer(this->Param(1));
  layer.SetUp(bottom, this->top_vec_);
  layer.Forward(bottom, this->top_vec_);
  this->top_->mutable_cpu_diff()[0] = 1;
  for (int i = 0; i < 2; ++i) {
    caffe_set(bottom[i]->count(), std::numeric_limits<Dtype>::quiet_NaN(),
        bottom[i]->mutable_cpu_diff());
  }
  vector<bool> down{true, true, false, false};
  layer.Backward(this->top_vec_, down, bottom);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < bottom[i]->count(); ++j) {
      ASSERT_TRUE(std::isfinite(bottom[i]->cpu_diff()[j])) << i << " " << j;
    }
  }
}

TYPED_TEST(SmoothL1LossLayerTest, TestMismatchedWeightsDie) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  Blob<Dtype> small(3, 8, 2, 1);
  vector<Blob<Dtype>*> bottom = this->Bottom(4);
  bottom[2] = &small;
  LayerParameter p = this->Param(1);
  p.add_bottom("bbox_pred");
  p.add_bottom("bbox_targets");
  p.add_bottom("bbox_inside_weights");
  p.add_bottom("bbox_outside_weights");
  SmoothL1LossLayer<Dtype> layer(p);
  EXPECT_DEATH(layer.SetUp(bottom, this->top_vec_),
      "SmoothL1Loss layer 'loss_test': bottom 'bbox_inside_weights' 3 8 2 1 \\(48\\) must "
      "have as many elements as bottom 'bbox_pred'");
}

}  // namespace caffe
