#include <stdint.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_layer_common.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

template <typename TypeParam>
class ROIAlignLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  ROIAlignLayerTest()
      : data_(new Blob<Dtype>()), rois_(new Blob<Dtype>()), top_(new Blob<Dtype>()) {
    bottom_.push_back(data_);
    bottom_.push_back(rois_);
    top_vec_.push_back(top_);
  }
  virtual ~ROIAlignLayerTest() {
    delete data_;
    delete rois_;
    delete top_;
  }

  void SetRois(const std::vector<Dtype>& rows) {
    rois_->Reshape(static_cast<int>(rows.size() / 5), 5, 1, 1);
    for (size_t i = 0; i < rows.size(); ++i) rois_->mutable_cpu_data()[i] = rows[i];
  }

  // f(y, x) = 10 y + x on one H x W plane.
  void FillLinear(int h, int w) {
    data_->Reshape(1, 1, h, w);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) data_->mutable_cpu_data()[y * w + x] = 10 * y + x;
  }

  LayerParameter Param(int ph, int pw, float scale) {
    LayerParameter p;
    p.set_name("roi_align_test");
    p.set_type("ROIAlign");
    p.add_bottom("data");
    p.add_bottom("rois");
    ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
    rp->set_pooled_h(ph);
    rp->set_pooled_w(pw);
    rp->set_spatial_scale(scale);
    return p;
  }

  // One output value of a 1 x 1 pooled RoI over the current data.
  Dtype Pool1(const LayerParameter& p) {
    ROIAlignLayer<Dtype> layer(p);
    layer.SetUp(bottom_, top_vec_);
    layer.Forward(bottom_, top_vec_);
    return top_->cpu_data()[0];
  }

  Blob<Dtype>* const data_;
  Blob<Dtype>* const rois_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> bottom_;
  vector<Blob<Dtype>*> top_vec_;
};

TYPED_TEST_CASE(ROIAlignLayerTest, TestDtypesAndDevices);

TYPED_TEST(ROIAlignLayerTest, TestSetup) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(2, 3, 6, 7);
  this->SetRois(std::vector<Dtype>{0, 1, 1, 4, 4, 1, 0, 0, 5, 5});
  ROIAlignLayer<Dtype> layer(this->Param(2, 3, 1));
  layer.SetUp(this->bottom_, this->top_vec_);
  EXPECT_EQ(this->top_->num(), 2);
  EXPECT_EQ(this->top_->channels(), 3);
  EXPECT_EQ(this->top_->height(), 2);
  EXPECT_EQ(this->top_->width(), 3);
}

// Hand-computed values on f(y, x) = 10 y + x (bilinear interpolation is exact on it).
TYPED_TEST(ROIAlignLayerTest, TestForwardAlignments) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  LayerParameter p = this->Param(1, 1, 1);
  ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
  rp->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  // CAFFE: start 0, size 2, samples at 0.5 and 1.5 -> mean (1, 1) -> 11.
  EXPECT_NEAR(this->Pool1(p), 11, 1e-5);
  // DETECTRON: size 1, samples at 0.25 and 0.75 -> 5.5.
  rp->set_alignment(ROIPoolingParameter_Alignment_DETECTRON);
  EXPECT_NEAR(this->Pool1(p), 5.5, 1e-5);
  // HALF_PIXEL: start -0.5, size 1, samples at -0.25 (clamped to 0) and 0.25 -> 0.125 each.
  rp->set_alignment(ROIPoolingParameter_Alignment_HALF_PIXEL);
  EXPECT_NEAR(this->Pool1(p), 1.375, 1e-5);
  // MAX over CAFFE's 2 x 2 samples: the one at (1.5, 1.5) -> 16.5.
  rp->set_alignment(ROIPoolingParameter_Alignment_CAFFE);
  rp->set_pool(ROIPoolingParameter_PoolMethod_MAX);
  EXPECT_NEAR(this->Pool1(p), 16.5, 1e-5);
  // One sample per bin (is_multi_interpolate false): the centre, (1, 1) -> 11.
  rp->set_is_multi_interpolate(false);
  EXPECT_NEAR(this->Pool1(p), 11, 1e-5);
  // sampling_ratio 3 wins over is_multi_interpolate: samples at 1/3, 1, 5/3 -> max 16.67.
  rp->set_sampling_ratio(3);
  EXPECT_NEAR(this->Pool1(p), 50. / 3 + 5. / 3, 1e-4);
}

// BIN_CORNERS (faster-rcnn.pytorch): samples at the bin corners, the last row extrapolated.
TYPED_TEST(ROIAlignLayerTest, TestForwardBinCorners) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  LayerParameter p = this->Param(1, 1, 1);
  ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
  rp->set_alignment(ROIPoolingParameter_Alignment_BIN_CORNERS);
  rp->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  // Size 1 - 0 + 1 = 2, one bin: corners y, x in {0, 2} -> (0 + 2 + 20 + 22) / 4.
  EXPECT_NEAR(this->Pool1(p), 11, 1e-5);
  rp->set_pool(ROIPoolingParameter_PoolMethod_MAX);
  EXPECT_NEAR(this->Pool1(p), 22, 1e-5);
  // is_multi_interpolate false: the top-left corner only.
  rp->set_is_multi_interpolate(false);
  EXPECT_NEAR(this->Pool1(p), 0, 1e-6);
  // On a 2 x 2 map, box 0.5..0.5: samples at 0.5 and 1.5; [1, 2) extrapolates from rows 0
  // and 1, so the linear map is reproduced: (5.5 + 6.5 + 15.5 + 16.5) / 4 (clamping, as the
  // other alignments do, would give less).
  this->FillLinear(2, 2);
  rp->set_is_multi_interpolate(true);
  rp->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  this->SetRois(std::vector<Dtype>{0, 0.5, 0.5, 0.5, 0.5});
  EXPECT_NEAR(this->Pool1(p), 11, 1e-5);
  // A sample at y >= H (or x >= W) is 0: box 0..1 has corners at 0 and 2, so only (0, 0)
  // (100 after the shift) is inside.
  for (int i = 0; i < 4; ++i) this->data_->mutable_cpu_data()[i] += 100;
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  EXPECT_NEAR(this->Pool1(p), 100. / 4, 1e-5);
  // A map of height 1 uses its one row: x = 0.5 on [1, 2, 4] -> 1.5.
  this->data_->Reshape(1, 1, 1, 3);
  this->data_->mutable_cpu_data()[0] = 1;
  this->data_->mutable_cpu_data()[1] = 2;
  this->data_->mutable_cpu_data()[2] = 4;
  rp->set_is_multi_interpolate(false);
  this->SetRois(std::vector<Dtype>{0, 0.5, 0, 0.5, 0});
  EXPECT_NEAR(this->Pool1(p), 1.5, 1e-6);
}

// CROP_AND_RESIZE (tf.image.crop_and_resize): one sample per output, corner to corner.
TYPED_TEST(ROIAlignLayerTest, TestForwardCropAndResize) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 3, 3, 0, 1, 1, 4, 4});
  LayerParameter p = this->Param(2, 2, 1);
  ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
  rp->set_alignment(ROIPoolingParameter_Alignment_CROP_AND_RESIZE);
  rp->set_sampling_ratio(3);  // does not apply
  ROIAlignLayer<Dtype> layer(p);
  layer.SetUp(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  const Dtype* top = this->top_->cpu_data();
  // Samples at 0 and 3 (H - 1 itself is inside).
  EXPECT_NEAR(top[0], 0, 1e-6);
  EXPECT_NEAR(top[1], 3, 1e-6);
  EXPECT_NEAR(top[2], 30, 1e-5);
  EXPECT_NEAR(top[3], 33, 1e-5);
  // Samples at 1 and 4: beyond H - 1 = 3 is 0.
  EXPECT_NEAR(top[4], 11, 1e-5);
  EXPECT_EQ(top[5], 0);
  EXPECT_EQ(top[6], 0);
  EXPECT_EQ(top[7], 0);
  // pooled 1 x 1: the box centre (1.5, 1.5).
  this->SetRois(std::vector<Dtype>{0, 0, 0, 3, 3});
  LayerParameter c = this->Param(1, 1, 1);
  c.mutable_roi_pooling_param()->set_alignment(ROIPoolingParameter_Alignment_CROP_AND_RESIZE);
  EXPECT_NEAR(this->Pool1(c), 16.5, 1e-5);
}

// The alignments that sample at corners are bilinear only; BIN_CORNERS has no adaptive grid.
TYPED_TEST(ROIAlignLayerTest, TestCornerAlignmentsRejectWhatTheyLack) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  LayerParameter p = this->Param(1, 1, 1);
  p.mutable_roi_pooling_param()->set_alignment(ROIPoolingParameter_Alignment_BIN_CORNERS);
  p.mutable_roi_pooling_param()->set_bi_type(1);
  ROIAlignLayer<Dtype> bicubic(p);
  EXPECT_DEATH(bicubic.SetUp(this->bottom_, this->top_vec_),
      "ROIAlign layer 'roi_align_test': alignment BIN_CORNERS is defined for bilinear "
      "sampling only; bi_type must be 0, got 1");
  p.mutable_roi_pooling_param()->set_bi_type(0);
  p.mutable_roi_pooling_param()->set_sampling_ratio(0);
  ROIAlignLayer<Dtype> adaptive(p);
  EXPECT_DEATH(adaptive.SetUp(this->bottom_, this->top_vec_),
      "alignment BIN_CORNERS samples at the bin corners and has no adaptive grid");
}

TYPED_TEST(ROIAlignLayerTest, TestForwardBinsAndScale) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(4, 4);
  // Image box (0, 0)-(3, 5) at scale 0.5 -> start (0, 0), size (3.5, 2.5) with CAFFE.
  this->SetRois(std::vector<Dtype>{0, 0, 0, 5, 3});
  LayerParameter p = this->Param(2, 1, 0.5);
  p.mutable_roi_pooling_param()->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  ROIAlignLayer<Dtype> layer(p);
  layer.SetUp(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  // Bins of height 1.25: centres y = 0.625 and 1.875; one bin of width 3.5: centre x = 1.75.
  EXPECT_NEAR(this->top_->cpu_data()[0], 6.25 + 1.75, 1e-5);
  EXPECT_NEAR(this->top_->cpu_data()[1], 18.75 + 1.75, 1e-5);
}

// At the last row and column the interpolation weights stay whole: no zero-weight corners.
TYPED_TEST(ROIAlignLayerTest, TestForwardLastRowColumn) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(2, 2);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  LayerParameter p = this->Param(1, 1, 1);
  p.mutable_roi_pooling_param()->set_is_multi_interpolate(false);
  // CAFFE: size 2, sample at (1, 1), the bottom-right pixel itself.
  EXPECT_NEAR(this->Pool1(p), 11, 1e-6);
  // A sample in (H - 1, H] is clamped to the last row: (1.75, 1.75) -> 11.
  p.mutable_roi_pooling_param()->set_sampling_ratio(2);
  p.mutable_roi_pooling_param()->set_pool(ROIPoolingParameter_PoolMethod_MAX);
  this->SetRois(std::vector<Dtype>{0, 0.5, 0.5, 1, 1});
  EXPECT_NEAR(this->Pool1(p), 11, 1e-6);
}

// Samples beyond -1 or H contribute 0 but still count in AVE's divisor.
TYPED_TEST(ROIAlignLayerTest, TestForwardOutside) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(2, 2);
  for (int i = 0; i < 4; ++i) this->data_->mutable_cpu_data()[i] += 100;
  LayerParameter p = this->Param(1, 1, 1);
  ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
  rp->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  rp->set_alignment(ROIPoolingParameter_Alignment_DETECTRON);
  // DETECTRON box 5..9 on a 2 x 2 map: samples at 6 and 8, all beyond W = 2.
  this->SetRois(std::vector<Dtype>{0, 5, 5, 9, 9});
  EXPECT_EQ(this->Pool1(p), 0);
  rp->set_sampling_ratio(1);
  // x 0..4: centre x = 2 = W, inside (clamped to 1); y size 1, centre 0.5 -> 100 + 5 + 1.
  this->SetRois(std::vector<Dtype>{0, 0, 0, 4, 0});
  EXPECT_NEAR(this->Pool1(p), 106, 1e-5);
  // x 0..6: centre 3 > W: outside -> 0.
  this->SetRois(std::vector<Dtype>{0, 0, 0, 6, 0});
  EXPECT_EQ(this->Pool1(p), 0);
  // 2 x 2 samples, x at 2 (inside) and 6 (outside), y at 0.25 and 0.75: the two outside
  // samples add 0 but count in the divisor.
  rp->set_sampling_ratio(2);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 8, 0});
  EXPECT_NEAR(this->Pool1(p), (103.5 + 108.5) / 4, 1e-5);
  // MAX: the outside samples are candidates with value 0; here every inside one is negative.
  for (int i = 0; i < 4; ++i) this->data_->mutable_cpu_data()[i] -= 200;
  rp->set_pool(ROIPoolingParameter_PoolMethod_MAX);
  EXPECT_EQ(this->Pool1(p), 0);
}

TYPED_TEST(ROIAlignLayerTest, TestForwardBicubic) {
  typedef typename TypeParam::Dtype Dtype;
  // One row holding x^2; the sample at x = 1.5 gets weights (-1/8, 5/8, 5/8, -1/8) -> 2.
  this->data_->Reshape(1, 1, 1, 5);
  for (int x = 0; x < 5; ++x) this->data_->mutable_cpu_data()[x] = x * x;
  this->SetRois(std::vector<Dtype>{0, 0, 0, 2, 0});
  LayerParameter p = this->Param(1, 1, 1);
  p.mutable_roi_pooling_param()->set_is_multi_interpolate(false);
  EXPECT_NEAR(this->Pool1(p), 2.5, 1e-5);  // bilinear
  p.mutable_roi_pooling_param()->set_bi_type(1);
  EXPECT_NEAR(this->Pool1(p), 2.0, 1e-5);  // bicubic
  // At an integer coordinate bicubic returns the pixel: x = 3 (box 2..3, centre 3).
  this->SetRois(std::vector<Dtype>{0, 2, 0, 3, 0});
  EXPECT_NEAR(this->Pool1(p), 9, 1e-5);
  // Neighbours clamp at the border: x = 0.5 uses pixels (0, 0, 1, 4).
  this->SetRois(std::vector<Dtype>{0, 0, 0, 0, 0});
  EXPECT_NEAR(this->Pool1(p), -0.125 * 0 + 0.625 * 0 + 0.625 * 1 - 0.125 * 4, 1e-5);
}

TYPED_TEST(ROIAlignLayerTest, TestForwardPadRatio) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, 1, 1, 2, 2});
  LayerParameter p = this->Param(2, 2, 1);
  ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
  rp->set_is_multi_interpolate(false);
  rp->set_pool(ROIPoolingParameter_PoolMethod_AVE);
  ROIAlignLayer<Dtype> plain(p);
  plain.SetUp(this->bottom_, this->top_vec_);
  plain.Forward(this->bottom_, this->top_vec_);
  // No padding: size 2, bins of 1, centres 1.5 and 2.5.
  EXPECT_NEAR(this->top_->cpu_data()[0], 16.5, 1e-5);
  EXPECT_NEAR(this->top_->cpu_data()[3], 27.5, 1e-5);
  // pad_ratio 0.5: p = 1, box 0..3 (clipped to round(4 / 1) - 1 = 3): centres 1 and 3.
  rp->set_pad_ratio(0.5);
  ROIAlignLayer<Dtype> padded(p);
  padded.SetUp(this->bottom_, this->top_vec_);
  padded.Forward(this->bottom_, this->top_vec_);
  EXPECT_NEAR(this->top_->cpu_data()[0], 11, 1e-5);
  EXPECT_NEAR(this->top_->cpu_data()[1], 13, 1e-5);
  EXPECT_NEAR(this->top_->cpu_data()[3], 33, 1e-5);
}

TYPED_TEST(ROIAlignLayerTest, TestZeroRois) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(1, 3, 5, 5);
  this->rois_->Reshape(std::vector<int>{0, 5});
  for (int pool = 0; pool < 2; ++pool) {
    LayerParameter p = this->Param(2, 2, 1);
    p.mutable_roi_pooling_param()->set_pool(
        static_cast<ROIPoolingParameter_PoolMethod>(pool));
    ROIAlignLayer<Dtype> layer(p);
    layer.SetUp(this->bottom_, this->top_vec_);
    EXPECT_EQ(this->top_->shape_string(), "0 3 2 2 (0)");
    layer.Forward(this->bottom_, this->top_vec_);
    caffe_set(this->data_->count(), Dtype(7), this->data_->mutable_cpu_diff());
    layer.Backward(this->top_vec_, std::vector<bool>{true, false}, this->bottom_);
    for (int i = 0; i < this->data_->count(); ++i) {
      EXPECT_EQ(this->data_->cpu_diff()[i], 0);
    }
  }
}

TYPED_TEST(ROIAlignLayerTest, TestNonFiniteCoordinates) {
  typedef typename TypeParam::Dtype Dtype;
  const Dtype inf = std::numeric_limits<Dtype>::infinity();
  const Dtype nan = std::numeric_limits<Dtype>::quiet_NaN();
  this->FillLinear(4, 4);
  this->SetRois(std::vector<Dtype>{0, nan, 0, 1, 1, 0, 0, -inf, inf, 1,
                                   0, 0, 0, 1e30, 1e30, 0, 1, 1, 2, 2});
  for (int sr = -1; sr <= 0; ++sr) {
    LayerParameter p = this->Param(2, 2, 1);
    p.mutable_roi_pooling_param()->set_sampling_ratio(sr);
    ROIAlignLayer<Dtype> layer(p);
    layer.SetUp(this->bottom_, this->top_vec_);
    layer.Forward(this->bottom_, this->top_vec_);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(this->top_->cpu_data()[i], 0) << i;
    // The finite rows are computed as usual.
    EXPECT_TRUE(std::isfinite(this->top_->cpu_data()[8]));
    EXPECT_GT(this->top_->cpu_data()[12], 0);
    caffe_set(this->top_->count(), Dtype(1), this->top_->mutable_cpu_diff());
    layer.Backward(this->top_vec_, std::vector<bool>{true, false}, this->bottom_);
    for (int i = 0; i < this->data_->count(); ++i) {
      EXPECT_TRUE(std::isfinite(this->data_->cpu_diff()[i]));
    }
  }
}

TYPED_TEST(ROIAlignLayerTest, TestBadBatchIndexDies) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  this->data_->Reshape(2, 1, 4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1, 1.5, 0, 0, 1, 1});
  ROIAlignLayer<Dtype> layer(this->Param(1, 1, 1));
  layer.SetUp(this->bottom_, this->top_vec_);
  EXPECT_DEATH(layer.Forward(this->bottom_, this->top_vec_),
      "ROIAlign layer 'roi_align_test': bottom 'rois' row 1 has batch index 1.5");
  this->rois_->mutable_cpu_data()[5] = 2;
  EXPECT_DEATH(layer.Forward(this->bottom_, this->top_vec_), "row 1 has batch index 2;");
  this->rois_->mutable_cpu_data()[5] = -1;
  EXPECT_DEATH(layer.Forward(this->bottom_, this->top_vec_), "row 1 has batch index -1;");
}

// sampling_ratio is capped at kMaxGrid (1024): grid_h * grid_w must not overflow an int.
TYPED_TEST(ROIAlignLayerTest, TestSamplingRatioCap) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  this->data_->Reshape(1, 1, 4, 4);
  this->SetRois(std::vector<Dtype>{0, 0, 0, 1, 1});
  LayerParameter p = this->Param(1, 1, 1);
  p.mutable_roi_pooling_param()->set_sampling_ratio(roi_align::kMaxGrid);
  ROIAlignLayer<Dtype> ok(p);
  ok.SetUp(this->bottom_, this->top_vec_);  // the cap itself is accepted
  p.mutable_roi_pooling_param()->set_sampling_ratio(roi_align::kMaxGrid + 1);
  ROIAlignLayer<Dtype> layer(p);
  EXPECT_DEATH(layer.SetUp(this->bottom_, this->top_vec_),
      "ROIAlign layer 'roi_align_test': roi_pooling_param.sampling_ratio must be -1, 0 "
      "\\(adaptive\\) or in \\[1, 1024\\], got 1025");
  p.mutable_roi_pooling_param()->set_sampling_ratio(46341);
  ROIAlignLayer<Dtype> big(p);
  EXPECT_DEATH(big.SetUp(this->bottom_, this->top_vec_), "got 46341");
}

// The CUDA kernels' element cap: CUDA_KERNEL_LOOP's int index plus the grid stride must not
// overflow, so counts up to (INT_MAX - 1024) / 2 are accepted and larger ones refused.
TEST(RoiKernelCountTest, CapKeepsTheGridStrideLoopInRange) {
  EXPECT_TRUE(RoiKernelCountOk(0));
  EXPECT_TRUE(RoiKernelCountOk(kMaxKernelCount));
  EXPECT_FALSE(RoiKernelCountOk(static_cast<int64_t>(kMaxKernelCount) + 1));
  EXPECT_FALSE(RoiKernelCountOk(INT_MAX));
  EXPECT_FALSE(RoiKernelCountOk(-1));
  // The last index below the cap plus the largest stride CAFFE_GET_BLOCKS gives (count
  // rounded up to 512 threads) still fits an int.
  const int64_t stride = (static_cast<int64_t>(kMaxKernelCount) + 511) / 512 * 512;
  EXPECT_LE(kMaxKernelCount - 1 + stride, static_cast<int64_t>(INT_MAX));
  LayerParameter p;
  p.set_name("roi_align_test");
  p.set_type("ROIAlign");
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(CheckRoiKernelCount(p, static_cast<int64_t>(kMaxKernelCount) + 1, "top"),
      "ROIAlign layer 'roi_align_test': top has 1073741312 elements; the CUDA kernels "
      "handle at most 1073741311");
}

// pool_bin's taps_y / taps_x: the taps of sample i of bin `bin` along one axis of a RoI.
template <typename Dtype>
struct AxisTaps {
  Dtype start, bin_size;
  int bin, grid, size, bi_type, alignment;
  roi_align::Taps<Dtype> operator()(int i) const {
    return roi_align::sample_taps(start, bin_size, bin, i, grid, size, bi_type, alignment);
  }
};

// scatter_bin's add on the CPU.
template <typename Dtype>
struct AddTo {
  void operator()(Dtype* at, Dtype v) const { *at += v; }
};

// One setting of the bit-identity tests: pool, bi_type, alignment, sampling_ratio.
struct AlignMode {
  const char* name;
  bool ave;
  int bi_type, alignment, sampling;
  LayerParameter Apply(LayerParameter p) const {
    ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
    rp->set_pool(ave ? ROIPoolingParameter_PoolMethod_AVE : ROIPoolingParameter_PoolMethod_MAX);
    rp->set_bi_type(bi_type);
    rp->set_alignment(static_cast<ROIPoolingParameter_Alignment>(alignment));
    rp->set_sampling_ratio(sampling);
    return p;
  }
};

// Every pool x bi_type, each alignment, fixed and adaptive sampling.
const AlignMode kAlignModes[] = {
  {"seed MAX", false, 0, ROIPoolingParameter_Alignment_CAFFE, 2},
  {"AVE half-pixel sr2", true, 0, ROIPoolingParameter_Alignment_HALF_PIXEL, 2},
  {"AVE detectron adaptive", true, 0, ROIPoolingParameter_Alignment_DETECTRON, 0},
  {"MAX adaptive", false, 0, ROIPoolingParameter_Alignment_DETECTRON, 0},
  {"bicubic MAX", false, 1, ROIPoolingParameter_Alignment_CAFFE, 2},
  {"bicubic AVE adaptive", true, 1, ROIPoolingParameter_Alignment_HALF_PIXEL, 0},
  {"bin corners AVE", true, 0, ROIPoolingParameter_Alignment_BIN_CORNERS, 2},
  {"crop and resize", false, 0, ROIPoolingParameter_Alignment_CROP_AND_RESIZE, 1},
};

// ROIAlign with its argmaxes in view.
template <typename Dtype>
class ArgmaxROIAlign : public ROIAlignLayer<Dtype> {
 public:
  explicit ArgmaxROIAlign(const LayerParameter& p) : ROIAlignLayer<Dtype>(p) {}
  const int* argmax() const { return this->argmax_.cpu_data(); }
};

// The forward is bit-identical to the geometry header's scalar definition (pool_bin per
// channel), compared bit for bit, -0 against +0 included, and the argmaxes equal: in every
// pool x bi_type x alignment, on a map with exact zeros and negative zeros, 67 channels (one
// full block of the CPU pass and a partial one), RoIs from one pixel to larger than the map
// (adaptive grids up to 19 samples a side, whose bins need more rows than the CPU pass keeps
// at once) and one outside the map.
TYPED_TEST(ROIAlignLayerTest, TestForwardBitIdenticalToDefinition) {
  typedef typename TypeParam::Dtype Dtype;
  const int channels = 67, height = 23, width = 29;
  this->data_->Reshape(2, channels, height, width);
  Dtype* x = this->data_->mutable_cpu_data();
  for (int i = 0; i < this->data_->count(); ++i) {
    const int k = (i * 7919) % 13;
    x[i] = k == 0 ? Dtype(0) : (k == 1 ? -Dtype(0) : std::sin(Dtype(0.37) * i) * (k - 6));
  }
  this->SetRois(std::vector<Dtype>{0, 3, 4, 3, 4, 1, 10.5, 2.25, 60, 40.5, 0, 0, 0, 460, 360,
      1, -30, -20, 500, 400, 0, 200, 150, 260, 180, 1, 900, 900, 950, 990, 0, 5, 5, 90, 8,
      1, -100, -300, 700, 900});
  for (const AlignMode& mode : kAlignModes) {
    LayerParameter param = mode.Apply(this->Param(7, 5, Dtype(1) / 16));
    const ROIPoolingParameter* rp = &param.roi_pooling_param();
    ArgmaxROIAlign<Dtype> layer(param);
    layer.SetUp(this->bottom_, this->top_vec_);
    layer.Forward(this->bottom_, this->top_vec_);
    const Dtype* top = this->top_->cpu_data();
    roi_align::Params<Dtype> q = roi_align::ParamsFrom<Dtype>(*rp, height, width);
    q.spatial_scale = Dtype(1) / 16;
    for (int n = 0; n < this->rois_->num(); ++n) {
      const Dtype* roi = this->rois_->cpu_data() + n * 5;
      const roi_align::Box<Dtype> b = roi_align::roi_box(roi, q);
      for (int c = 0; c < channels; ++c) {
        const Dtype* plane = x + (static_cast<int>(roi[0]) * channels + c) * height * width;
        for (int ph = 0; ph < q.pooled_h; ++ph) {
          for (int pw = 0; pw < q.pooled_w; ++pw) {
            const AxisTaps<Dtype> ty = {b.start_h, b.bin_h, ph, b.grid_h, height, q.bi_type,
                q.alignment};
            const AxisTaps<Dtype> tx = {b.start_w, b.bin_w, pw, b.grid_w, width, q.bi_type,
                q.alignment};
            int am = -1;
            const Dtype want = q.bi_type == roi_align::kBicubic
                ? roi_align::pool_bin<4>(plane, width, b.grid_h, b.grid_w, q.is_max, ty, tx,
                    &am)
                : roi_align::pool_bin<2>(plane, width, b.grid_h, b.grid_w, q.is_max, ty, tx,
                    &am);
            const int at = ((n * channels + c) * q.pooled_h + ph) * q.pooled_w + pw;
            ASSERT_EQ(0, std::memcmp(&want, top + at, sizeof(Dtype))) << mode.name
                << ": RoI " << n << " channel " << c << " bin (" << ph << ", " << pw
                << "): " << want << " against " << top[at];
            if (q.is_max) {
              ASSERT_EQ(am, layer.argmax()[at]) << mode.name << ": RoI " << n;
            }
          }
        }
      }
    }
  }
}

// The backward is the scalar definition too: each channel's gradient adds scatter_bin's
// terms in RoI, bin and sample order, so it is compared bit for bit with that sum, in every
// mode of kAlignModes, with 131 channels (a full 128-channel block of the CPU pass and a partial
// one) and RoIs that overlap, leave the map or have large adaptive grids.
TYPED_TEST(ROIAlignLayerTest, TestBackwardBitIdenticalToDefinition) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() == Caffe::GPU) return;  // GPU atomics add in no fixed order
  const int channels = 131, height = 17, width = 21;
  this->data_->Reshape(2, channels, height, width);
  Dtype* x = this->data_->mutable_cpu_data();
  for (int i = 0; i < this->data_->count(); ++i) x[i] = std::sin(Dtype(0.61) * i);
  this->SetRois(std::vector<Dtype>{0, 3, 4, 60, 44, 1, 10.5, 2.25, 300, 200.5, 0, 0, 0, 330,
      260, 1, -30, -20, 400, 300, 0, 20, 15, 100, 80, 0, 5, 5, 90, 8});
  for (const AlignMode& mode : kAlignModes) {
    LayerParameter param = mode.Apply(this->Param(5, 4, Dtype(1) / 16));
    const ROIPoolingParameter* rp = &param.roi_pooling_param();
    ArgmaxROIAlign<Dtype> layer(param);
    layer.SetUp(this->bottom_, this->top_vec_);
    layer.Forward(this->bottom_, this->top_vec_);
    Dtype* top_diff = this->top_->mutable_cpu_diff();
    for (int i = 0; i < this->top_->count(); ++i) top_diff[i] = std::cos(Dtype(0.37) * i);
    layer.Backward(this->top_vec_, std::vector<bool>{true, false}, this->bottom_);
    std::vector<Dtype> want(this->data_->count(), Dtype(0));
    roi_align::Params<Dtype> q = roi_align::ParamsFrom<Dtype>(*rp, height, width);
    q.spatial_scale = Dtype(1) / 16;
    const AddTo<Dtype> add;
    for (int n = 0; n < this->rois_->num(); ++n) {
      const Dtype* roi = this->rois_->cpu_data() + n * 5;
      const roi_align::Box<Dtype> b = roi_align::roi_box(roi, q);
      for (int c = 0; c < channels; ++c) {
        Dtype* plane = want.data()
            + (static_cast<int>(roi[0]) * channels + c) * height * width;
        for (int ph = 0; ph < q.pooled_h; ++ph) {
          for (int pw = 0; pw < q.pooled_w; ++pw) {
            const AxisTaps<Dtype> ty = {b.start_h, b.bin_h, ph, b.grid_h, height, q.bi_type,
                q.alignment};
            const AxisTaps<Dtype> tx = {b.start_w, b.bin_w, pw, b.grid_w, width, q.bi_type,
                q.alignment};
            const int at = ((n * channels + c) * q.pooled_h + ph) * q.pooled_w + pw;
            const int am = q.is_max ? layer.argmax()[at] : -1;
            if (q.bi_type == roi_align::kBicubic) {
              roi_align::scatter_bin<4>(plane, width, b.grid_h, b.grid_w, q.is_max, am,
                  top_diff[at], ty, tx, add);
            } else {
              roi_align::scatter_bin<2>(plane, width, b.grid_h, b.grid_w, q.is_max, am,
                  top_diff[at], ty, tx, add);
            }
          }
        }
      }
    }
    const Dtype* got = this->data_->cpu_diff();
    for (int i = 0; i < this->data_->count(); ++i) {
      ASSERT_EQ(0, std::memcmp(&want[i], got + i, sizeof(Dtype))) << mode.name
          << ": bottom diff " << i << ": " << want[i] << " against " << got[i];
    }
  }
}

// Gradient checks over pool x bi_type x grid x alignment x pad_ratio.
TYPED_TEST(ROIAlignLayerTest, TestGradientAllModes) {
  typedef typename TypeParam::Dtype Dtype;
  this->data_->Reshape(2, 2, 5, 6);
  FillerParameter filler_param;
  filler_param.set_std(1);
  GaussianFiller<Dtype> filler(filler_param);
  // Image coordinates at scale 0.5 (image 10 x 12): inside, the whole image, partly outside,
  // degenerate (x2 < x1) and a box touching the last row and column.
  this->SetRois(std::vector<Dtype>{0, 1, 2, 7, 6, 1, 0, 0, 11, 9, 1, 6, 4, 15, 13,
                                   0, 5, 5, 3, 4, 1, 8, 6, 11, 9});
  struct Grid { int sampling_ratio; bool multi; };
  const Grid grids[] = {{-1, true}, {-1, false}, {0, true}, {3, true}};
  for (int pool = 0; pool < 2; ++pool)
  for (int bi = 0; bi < 2; ++bi)
  for (int g = 0; g < 4; ++g)
  for (int align = 0; align < 5; ++align)
  for (int pad = 0; pad < 2; ++pad) {
    if (bi == 1 && roi_align::corner_samples(align)) continue;  // bilinear only
    if (align == roi_align::kBinCorners && grids[g].sampling_ratio == 0) continue;
    filler.Fill(this->data_);
    LayerParameter p = this->Param(2, 3, 0.5);
    ROIPoolingParameter* rp = p.mutable_roi_pooling_param();
    rp->set_pool(static_cast<ROIPoolingParameter_PoolMethod>(pool));
    rp->set_bi_type(bi);
    rp->set_sampling_ratio(grids[g].sampling_ratio);
    rp->set_is_multi_interpolate(grids[g].multi);
    rp->set_alignment(static_cast<ROIPoolingParameter_Alignment>(align));
    rp->set_pad_ratio(pad ? 0.1 : 0);
    SCOPED_TRACE(::testing::Message() << "pool " << pool << " bi_type " << bi
        << " sampling_ratio " << grids[g].sampling_ratio << " multi " << grids[g].multi
        << " alignment " << align << " pad_ratio " << rp->pad_ratio());
    ROIAlignLayer<Dtype> layer(p);
    GradientChecker<Dtype> checker(1e-4, 1e-2);
    checker.CheckGradientExhaustive(&layer, this->bottom_, this->top_vec_, 0);
  }
}

}  // namespace caffe
