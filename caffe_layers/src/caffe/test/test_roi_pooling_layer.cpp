#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/roi_pooling_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

template <typename TypeParam>
class ROIPoolingLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  ROIPoolingLayerTest()
      : data_(new Blob<Dtype>()), rois_(new Blob<Dtype>()), top_(new Blob<Dtype>()) {
    bottom_.push_back(data_);
    bottom_.push_back(rois_);
    top_vec_.push_back(top_);
  }
  virtual ~ROIPoolingLayerTest() { delete data_; delete rois_; delete top_; }

  void SetRois(const std::vector<Dtype>& rows) {
    rois_->Reshape(static_cast<int>(rows.size() / 5), 5, 1, 1);
    for (size_t i = 0; i < rows.size(); ++i) rois_->mutable_cpu_data()[i] = rows[i];
  }

  LayerParameter Param(int ph, int pw, float scale) {
    LayerParameter p;
    p.set_name("roi_pool_test");
    p.set_type("ROIPooling");
    p.add_bottom("data");
    p.add_bottom("rois");
    p.mutable_roi_pooling_param()->set_pooled_h(ph);
    p.mutable_roi_pooling_param()->set_pooled_w(pw);
    p.mutable_roi_pooling_param()->set_spatial_scale(scale);
    return p;
  }

  Blob<Dtype>* const data_;
  Blob<Dtype>* const rois_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> bottom_;
  vector<Blob<Dtype>*> top_vec_;
};

TYPED_TEST_CASE(ROIPoolingLayerTest, TestDtypesAndDevices);

// A 4 x 4 map holding 0..15 (row-major), max-pooled by hand.
TYPED_TEST(ROIPoolingLayerTest, TestForwardByHand) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(1, 1, 4, 4);
  for (int i = 0; i < 16; ++i) this->data_->mutable_cpu_data()[i] = i;
  // Image box (1, 1)-(6, 6) at scale 0.5: corners round(0.5) = 1 (half away from zero) and
  // 3: rows/cols 1..3, size 3; 2 x 2 bins -> rows [1, 3) and [2, 4) (floor/ceil of 1.5).
  this->SetRois(std::vector<Dtype>{0, 1, 1, 6, 6});
  ROIPoolingLayer<Dtype> layer(this->Param(2, 2, 0.5));
  layer.SetUp(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  const Dtype* top = this->top_->cpu_data();
  EXPECT_EQ(top[0], 10);  // rows 1-2, cols 1-2
  EXPECT_EQ(top[1], 11);  // rows 1-2, cols 2-3
  EXPECT_EQ(top[2], 14);
  EXPECT_EQ(top[3], 15);
  // A box beyond the map: clipped bins are empty -> 0.
  this->SetRois(std::vector<Dtype>{0, 20, 20, 30, 30});
  layer.Reshape(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(this->top_->cpu_data()[i], 0);
  // Backward sends each output's diff to its argmax.
  this->SetRois(std::vector<Dtype>{0, 1, 1, 6, 6});
  layer.Reshape(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  for (int i = 0; i < 4; ++i) this->top_->mutable_cpu_diff()[i] = i + 1;
  layer.Backward(this->top_vec_, std::vector<bool>{true, false}, this->bottom_);
  const Dtype* diff = this->data_->cpu_diff();
  EXPECT_EQ(diff[10], 1);
  EXPECT_EQ(diff[11], 2);
  EXPECT_EQ(diff[14], 3);
  EXPECT_EQ(diff[15], 4);
  Dtype total = 0;
  for (int i = 0; i < 16; ++i) total += diff[i];
  EXPECT_EQ(total, 10);
}

// ROIPooling with its argmaxes in view.
template <typename Dtype>
class ArgmaxROIPooling : public ROIPoolingLayer<Dtype> {
 public:
  explicit ArgmaxROIPooling(const LayerParameter& p) : ROIPoolingLayer<Dtype>(p) {}
  const int* argmax() const { return this->argmax_.cpu_data(); }
};

// The forward against the definition, pool_bin per channel, bit for bit and argmax for
// argmax: 131 channels (two full 64-channel blocks of the CPU pass and a partial one), ties
// (a map of few distinct values, so the first largest pixel must win), -0 next to +0, NaN,
// and RoIs that are one pixel, overlap, or leave the map.
TYPED_TEST(ROIPoolingLayerTest, TestForwardMatchesDefinition) {
  typedef typename TypeParam::Dtype Dtype;
  const int channels = 131, height = 19, width = 23;
  this->data_->Reshape(2, channels, height, width);
  Dtype* x = this->data_->mutable_cpu_data();
  for (int i = 0; i < this->data_->count(); ++i) {
    const int k = (i * 7919) % 11;
    x[i] = k == 0 ? -Dtype(0) : (k == 1 ? Dtype(0) : Dtype(k % 4) - 2);
  }
  x[5 * height * width + 7] = std::numeric_limits<Dtype>::quiet_NaN();
  this->SetRois(std::vector<Dtype>{0, 3, 4, 3, 4, 1, 10.5, 2.25, 200, 140.5, 0, 0, 0, 360, 300,
      1, -30, -20, 500, 400, 0, 100, 80, 160, 120, 0, 5, 5, 90, 8});
  LayerParameter param = this->Param(5, 4, 1.0f / 16);
  ArgmaxROIPooling<Dtype> layer(param);
  layer.SetUp(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  const Dtype* top = this->top_->cpu_data();
  for (int n = 0; n < this->rois_->num(); ++n) {
    const Dtype* roi = this->rois_->cpu_data() + n * 5;
    for (int c = 0; c < channels; ++c) {
      const Dtype* plane = x + (static_cast<int>(roi[0]) * channels + c) * height * width;
      for (int ph = 0; ph < 5; ++ph) {
        for (int pw = 0; pw < 4; ++pw) {
          int am = 0;
          const Dtype want = roi_pool::pool_bin(plane, roi, Dtype(1.0f / 16), height, width, 5,
              4, ph, pw, &am);
          const int at = ((n * channels + c) * 5 + ph) * 4 + pw;
          ASSERT_EQ(0, std::memcmp(&want, top + at, sizeof(Dtype))) << "RoI " << n
              << " channel " << c << " bin (" << ph << ", " << pw << "): " << want
              << " against " << top[at];
          ASSERT_EQ(am, layer.argmax()[at]) << "RoI " << n << " channel " << c;
        }
      }
    }
  }
}

TYPED_TEST(ROIPoolingLayerTest, TestZeroRois) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(1, 2, 4, 4);
  this->rois_->Reshape(std::vector<int>{0, 5});
  ROIPoolingLayer<Dtype> layer(this->Param(2, 2, 1));
  layer.SetUp(this->bottom_, this->top_vec_);
  EXPECT_EQ(this->top_->shape_string(), "0 2 2 2 (0)");
  layer.Forward(this->bottom_, this->top_vec_);
  caffe_set(this->data_->count(), Dtype(3), this->data_->mutable_cpu_diff());
  layer.Backward(this->top_vec_, std::vector<bool>{true, false}, this->bottom_);
  for (int i = 0; i < this->data_->count(); ++i) EXPECT_EQ(this->data_->cpu_diff()[i], 0);
}

TYPED_TEST(ROIPoolingLayerTest, TestNonFiniteAndHugeCoordinates) {
  typedef typename TypeParam::Dtype Dtype;
  const Dtype nan = std::numeric_limits<Dtype>::quiet_NaN();
  const Dtype inf = std::numeric_limits<Dtype>::infinity();
  this->data_->Reshape(1, 1, 4, 4);
  for (int i = 0; i < 16; ++i) this->data_->mutable_cpu_data()[i] = i + 1;
  this->SetRois(std::vector<Dtype>{0, nan, 0, 2, 2, 0, 0, 0, inf, 2, 0, -1e30, -1e30, 1e30,
                                   1e30});
  ROIPoolingLayer<Dtype> layer(this->Param(1, 1, 1));
  layer.SetUp(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  EXPECT_EQ(this->top_->cpu_data()[0], 0);
  EXPECT_EQ(this->top_->cpu_data()[1], 0);
  EXPECT_EQ(this->top_->cpu_data()[2], 16);  // the whole map, clipped
}

TYPED_TEST(ROIPoolingLayerTest, TestBadBatchIndexDies) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  this->data_->Reshape(1, 1, 4, 4);
  this->SetRois(std::vector<Dtype>{1, 0, 0, 1, 1});
  ROIPoolingLayer<Dtype> layer(this->Param(1, 1, 1));
  layer.SetUp(this->bottom_, this->top_vec_);
  EXPECT_DEATH(layer.Forward(this->bottom_, this->top_vec_),
      "ROIPooling layer 'roi_pool_test': bottom 'rois' row 0 has batch index 1;");
}

TYPED_TEST(ROIPoolingLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(2, 2, 6, 7);
  FillerParameter filler_param;
  filler_param.set_std(1);
  GaussianFiller<Dtype> filler(filler_param);
  filler.Fill(this->data_);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 12, 10, 1, 2, 4, 9, 11, 1, 6, 3, 20, 15,
                                   0, 5, 5, 3, 3});
  ROIPoolingLayer<Dtype> layer(this->Param(3, 2, 0.5));
  GradientChecker<Dtype> checker(1e-4, 1e-2);
  checker.CheckGradientExhaustive(&layer, this->bottom_, this->top_vec_, 0);
}

}  // namespace caffe
