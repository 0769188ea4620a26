// DropoutParameter.scale_train (proto/0001, proto/0002): py-faster-rcnn's ZF models train
// without scaling and multiply by (1 - ratio) at test time.
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/dropout_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

template <typename TypeParam>
class DropoutScaleTrainTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  DropoutScaleTrainTest() : bottom_(new Blob<Dtype>(2, 3, 4, 5)), top_(new Blob<Dtype>()) {
    FillerParameter filler_param;
    filler_param.set_min(1);
    filler_param.set_max(2);
    UniformFiller<Dtype> filler(filler_param);
    filler.Fill(bottom_);
    bottom_vec_.push_back(bottom_);
    top_vec_.push_back(top_);
  }
  virtual ~DropoutScaleTrainTest() { delete bottom_; delete top_; }

  // Runs forward (and backward with top diff = 1) and returns, per element, top / bottom and
  // bottom_diff; dropped elements give 0.
  void Run(bool scale_train, Phase phase, std::vector<Dtype>* ratio,
      std::vector<Dtype>* diff) {
    LayerParameter p;
    p.set_phase(phase);
    p.mutable_dropout_param()->set_dropout_ratio(0.25);
    if (!scale_train) p.mutable_dropout_param()->set_scale_train(false);
    DropoutLayer<Dtype> layer(p);
    layer.SetUp(bottom_vec_, top_vec_);
    layer.Forward(bottom_vec_, top_vec_);
    caffe_set(top_->count(), Dtype(1), top_->mutable_cpu_diff());
    layer.Backward(top_vec_, std::vector<bool>(1, true), bottom_vec_);
    ratio->clear();
    diff->clear();
    for (int i = 0; i < bottom_->count(); ++i) {
      ratio->push_back(top_->cpu_data()[i] / bottom_->cpu_data()[i]);
      diff->push_back(bottom_->cpu_diff()[i]);
    }
  }

  Blob<Dtype>* const bottom_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> bottom_vec_;
  vector<Blob<Dtype>*> top_vec_;
};

TYPED_TEST_CASE(DropoutScaleTrainTest, TestDtypesAndDevices);

TYPED_TEST(DropoutScaleTrainTest, TestDefaultScalesInTraining) {
  typedef typename TypeParam::Dtype Dtype;
  std::vector<Dtype> ratio, diff;
  this->Run(true, TRAIN, &ratio, &diff);
  int kept = 0;
  for (size_t i = 0; i < ratio.size(); ++i) {
    if (ratio[i] != 0) {
      EXPECT_NEAR(ratio[i], 1 / 0.75, 1e-5);
      EXPECT_NEAR(diff[i], 1 / 0.75, 1e-5);
      ++kept;
    } else {
      EXPECT_EQ(diff[i], 0);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, static_cast<int>(ratio.size()));
  this->Run(true, TEST, &ratio, &diff);
  for (size_t i = 0; i < ratio.size(); ++i) {
    EXPECT_NEAR(ratio[i], 1, 1e-6);
    EXPECT_NEAR(diff[i], 1, 1e-6);
  }
}

TYPED_TEST(DropoutScaleTrainTest, TestScaleTrainFalse) {
  typedef typename TypeParam::Dtype Dtype;
  std::vector<Dtype> ratio, diff;
  this->Run(false, TRAIN, &ratio, &diff);
  int kept = 0;
  for (size_t i = 0; i < ratio.size(); ++i) {
    if (ratio[i] != 0) {
      EXPECT_NEAR(ratio[i], 1, 1e-6);  // kept units are not scaled in training
      EXPECT_NEAR(diff[i], 1, 1e-6);
      ++kept;
    } else {
      EXPECT_EQ(diff[i], 0);
    }
  }
  EXPECT_GT(kept, 0);
  this->Run(false, TEST, &ratio, &diff);
  for (size_t i = 0; i < ratio.size(); ++i) {
    EXPECT_NEAR(ratio[i], 0.75, 1e-6);  // multiplied by 1 - ratio at test
    EXPECT_NEAR(diff[i], 0.75, 1e-6);
  }
}

}  // namespace caffe
