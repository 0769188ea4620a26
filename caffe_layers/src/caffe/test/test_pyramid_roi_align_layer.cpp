#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/pyramid_roi_align_layer.hpp"
#include "caffe/layers/roi_align_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// Level assignment: the four rules on boxes either side of their boundaries.
TEST(PyramidLevelTest, Rules) {
  PyramidROIParameter pp;  // FLOOR, first_level 2, canonical 224 @ 4
  const int L = 4;         // levels 2..5 -> indices 0..3
  using roi_align::PyramidLevel;
  EXPECT_EQ(PyramidLevel(0, 0, 224, 224, pp, L), 2);  // exactly canonical: level 4
  EXPECT_EQ(PyramidLevel(0, 0, 223, 223, pp, L), 1);
  EXPECT_EQ(PyramidLevel(0, 0, 112, 112, pp, L), 1);  // level 3
  EXPECT_EQ(PyramidLevel(0, 0, 111, 111, pp, L), 0);
  EXPECT_EQ(PyramidLevel(10, 10, 458, 458, pp, L), 3);  // 448: level 5
  EXPECT_EQ(PyramidLevel(0, 0, 5000, 5000, pp, L), 3);  // clamped to the coarsest
  EXPECT_EQ(PyramidLevel(0, 0, 1, 1, pp, L), 0);        // clamped to the finest
  EXPECT_EQ(PyramidLevel(5, 5, 5, 9, pp, L), 0);        // zero area: log2(0) = -inf
  EXPECT_EQ(PyramidLevel(0, 0, -300, 300, pp, L), 0);   // w * h < 0: NaN
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(PyramidLevel(nan, 0, 300, 300, pp, L), 0);
  EXPECT_EQ(PyramidLevel(0, 0, inf, inf, pp, L), 3);
  // FLOOR_PLUS_ONE: w = x2 - x1 + 1.
  pp.set_level_rule(PyramidROIParameter_LevelRule_FLOOR_PLUS_ONE);
  EXPECT_EQ(PyramidLevel(0, 0, 223, 223, pp, L), 2);
  EXPECT_EQ(PyramidLevel(0, 0, 222, 222, pp, L), 1);
  // ROUND: canonical_level + round(log2(size / 224)); the boundary is at 224 * sqrt(2).
  pp.set_level_rule(PyramidROIParameter_LevelRule_ROUND);
  EXPECT_EQ(PyramidLevel(0, 0, 316, 316, pp, L), 2);  // 316 < 316.78
  EXPECT_EQ(PyramidLevel(0, 0, 317, 317, pp, L), 3);
  EXPECT_EQ(PyramidLevel(0, 0, 159, 159, pp, L), 2);  // above 224 / sqrt(2) = 158.39
  EXPECT_EQ(PyramidLevel(0, 0, 158, 158, pp, L), 1);
  // FINEST_SCALE (mmdet): first_level + floor(log2(size / 56 + 1e-6)).
  pp.set_level_rule(PyramidROIParameter_LevelRule_FINEST_SCALE);
  EXPECT_EQ(PyramidLevel(0, 0, 56, 56, pp, L), 0);
  EXPECT_EQ(PyramidLevel(0, 0, 111, 111, pp, L), 0);
  EXPECT_EQ(PyramidLevel(0, 0, 112, 112, pp, L), 1);
  EXPECT_EQ(PyramidLevel(0, 0, 448, 448, pp, L), 3);
  // first_level and canonical settings move the boundaries.
  pp.set_level_rule(PyramidROIParameter_LevelRule_FLOOR);
  pp.set_first_level(3);
  EXPECT_EQ(PyramidLevel(0, 0, 224, 224, pp, L), 1);
  pp.set_canonical_size(112);
  EXPECT_EQ(PyramidLevel(0, 0, 224, 224, pp, L), 2);
}

template <typename TypeParam>
class PyramidROIAlignLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  // A pyramid of 3 levels (2, 2, 8 x 10 / 4 x 5 / 2 x 2) of images 32 x 40 (scales 1/4, 1/8,
  // 1/16): small, so that the exhaustive gradient checks stay quick.
  PyramidROIAlignLayerTest() : rois_(new Blob<Dtype>()), top_(new Blob<Dtype>()) {
    bottom_.push_back(rois_);
    Caffe::set_random_seed(1701);
    FillerParameter fp;
    fp.set_std(1);
    GaussianFiller<Dtype> filler(fp);
    for (int l = 0; l < 3; ++l) {
      bottom_.push_back(new Blob<Dtype>(2, 2, 8 >> l, 10 >> l));
      filler.Fill(bottom_.back());
    }
    top_vec_.push_back(top_);
  }
  virtual ~PyramidROIAlignLayerTest() {
    for (size_t i = 0; i < bottom_.size(); ++i) delete bottom_[i];
    delete top_;
  }

  void SetRois(const std::vector<Dtype>& rows) {
    rois_->Reshape(static_cast<int>(rows.size() / 5), 5, 1, 1);
    for (size_t i = 0; i < rows.size(); ++i) rois_->mutable_cpu_data()[i] = rows[i];
  }

  // canonical_size 32 at level 4 (first_level 2): boxes under 16 pixels go to level 2, to 32
  // level 3, larger ones level 4.
  LayerParameter Param(int pooled) {
    LayerParameter p;
    p.set_name("pyramid_test");
    p.set_type("PyramidROIAlign");
    p.add_bottom("rois");
    const char* names[] = {"p2", "p3", "p4"};
    for (int l = 0; l < 3; ++l) {
      p.add_bottom(names[l]);
      p.mutable_pyramid_roi_param()->add_spatial_scale(1.0 / (4 << l));
    }
    p.mutable_pyramid_roi_param()->set_canonical_size(32);
    p.mutable_pyramid_roi_param()->set_finest_scale(8);
    p.mutable_roi_pooling_param()->set_pooled_h(pooled);
    p.mutable_roi_pooling_param()->set_pooled_w(pooled);
    return p;
  }

  Blob<Dtype>* const rois_;
  Blob<Dtype>* const top_;
  vector<Blob<Dtype>*> bottom_;
  vector<Blob<Dtype>*> top_vec_;
};

TYPED_TEST_CASE(PyramidROIAlignLayerTest, TestDtypesAndDevices);

// Each RoI's output is exactly what ROIAlign gives on its level's map at its scale, for every
// alignment and both pools; the levels follow the rule.
TYPED_TEST(PyramidROIAlignLayerTest, TestForwardEqualsROIAlignOnTheLevel) {
  typedef typename TypeParam::Dtype Dtype;
  // Tiny, 16 x 16, the whole image, tiny, 40 x 40 partly off the map, swapped corners.
  this->SetRois(std::vector<Dtype>{0, 1, 1, 4, 5,  1, 5, 2, 21, 18,  0, 0, 0, 31, 39,
                                   1, 15, 20, 17, 22,  0, 25, 30, 65, 70,  1, 5, 5, 4, 4});
  for (int align = 0; align < 5; ++align)
  for (int pool = 0; pool < 2; ++pool) {
    LayerParameter p = this->Param(3);
    p.mutable_roi_pooling_param()->set_alignment(
        static_cast<ROIPoolingParameter_Alignment>(align));
    p.mutable_roi_pooling_param()->set_pool(static_cast<ROIPoolingParameter_PoolMethod>(pool));
    PyramidROIAlignLayer<Dtype> layer(p);
    layer.SetUp(this->bottom_, this->top_vec_);
    layer.Forward(this->bottom_, this->top_vec_);
    const int R = this->rois_->num(), per_roi = 2 * 3 * 3;
    ASSERT_EQ(this->top_->shape_string(), "6 2 3 3 (108)");
    vector<int> level(layer.levels().cpu_data(), layer.levels().cpu_data() + R);
    EXPECT_EQ(level, (vector<int>{0, 1, 2, 0, 2, 0}));
    for (int n = 0; n < R; ++n) {
      Blob<Dtype> roi(1, 5, 1, 1), out;
      caffe_copy(5, this->rois_->cpu_data() + n * 5, roi.mutable_cpu_data());
      LayerParameter a = p;
      a.set_type("ROIAlign");
      a.clear_bottom();
      a.add_bottom("data");
      a.add_bottom("rois");
      a.clear_pyramid_roi_param();
      a.mutable_roi_pooling_param()->set_spatial_scale(1.0 / (4 << level[n]));
      ROIAlignLayer<Dtype> single(a);
      vector<Blob<Dtype>*> b{this->bottom_[level[n] + 1], &roi}, t{&out};
      single.SetUp(b, t);
      single.Forward(b, t);
      for (int i = 0; i < per_roi; ++i) {
        ASSERT_EQ(this->top_->cpu_data()[n * per_roi + i], out.cpu_data()[i])
            << "alignment " << align << " pool " << pool << " RoI " << n << " output " << i;
      }
    }
  }
}

// Gradient checks, every level rule x alignment (both pools), each level's bottom in turn.
TYPED_TEST(PyramidROIAlignLayerTest, TestGradientEveryRuleAndAlignment) {
  typedef typename TypeParam::Dtype Dtype;
  this->SetRois(std::vector<Dtype>{0, 1, 1, 4, 5,  1, 5, 2, 21, 18,  0, 0, 0, 31, 39,
                                   1, 15, 20, 17, 22});
  for (int rule = 0; rule < 4; ++rule)
  for (int align = 0; align < 5; ++align)
  for (int pool = 0; pool < 2; ++pool) {
    LayerParameter p = this->Param(2);
    p.mutable_pyramid_roi_param()->set_level_rule(
        static_cast<PyramidROIParameter_LevelRule>(rule));
    p.mutable_roi_pooling_param()->set_alignment(
        static_cast<ROIPoolingParameter_Alignment>(align));
    p.mutable_roi_pooling_param()->set_pool(static_cast<ROIPoolingParameter_PoolMethod>(pool));
    SCOPED_TRACE(::testing::Message() << "level_rule " << rule << " alignment " << align
        << " pool " << pool);
    PyramidROIAlignLayer<Dtype> layer(p);
    GradientChecker<Dtype> checker(1e-4, 1e-2);
    for (int l = 1; l <= 3; ++l) {
      checker.CheckGradientExhaustive(&layer, this->bottom_, this->top_vec_, l);
    }
  }
}

// Zero RoIs: a top of shape (0, C, P, P) and zero gradients on every level; a level that no
// RoI reaches gets a zero gradient too.
TYPED_TEST(PyramidROIAlignLayerTest, TestZeroRoisAndEmptyLevels) {
  typedef typename TypeParam::Dtype Dtype;
  this->rois_->Reshape(std::vector<int>{0, 5});
  PyramidROIAlignLayer<Dtype> layer(this->Param(2));
  layer.SetUp(this->bottom_, this->top_vec_);
  EXPECT_EQ(this->top_->shape_string(), "0 2 2 2 (0)");
  layer.Forward(this->bottom_, this->top_vec_);
  const vector<bool> down{false, true, true, true};
  for (int l = 1; l <= 3; ++l) {
    caffe_set(this->bottom_[l]->count(), Dtype(7), this->bottom_[l]->mutable_cpu_diff());
  }
  layer.Backward(this->top_vec_, down, this->bottom_);
  for (int l = 1; l <= 3; ++l) {
    for (int i = 0; i < this->bottom_[l]->count(); ++i) {
      ASSERT_EQ(this->bottom_[l]->cpu_diff()[i], 0) << "level " << l << " element " << i;
    }
  }
  // One small RoI: level 2 only; levels 3 and 4 get zeros.
  this->SetRois(std::vector<Dtype>{1, 1, 1, 4, 5});
  layer.Reshape(this->bottom_, this->top_vec_);
  layer.Forward(this->bottom_, this->top_vec_);
  caffe_set(this->top_->count(), Dtype(1), this->top_->mutable_cpu_diff());
  for (int l = 1; l <= 3; ++l) {
    caffe_set(this->bottom_[l]->count(), Dtype(7), this->bottom_[l]->mutable_cpu_diff());
  }
  layer.Backward(this->top_vec_, down, this->bottom_);
  EXPECT_NE(caffe_cpu_asum(this->bottom_[1]->count(), this->bottom_[1]->cpu_diff()), 0);
  EXPECT_EQ(caffe_cpu_asum(this->bottom_[2]->count(), this->bottom_[2]->cpu_diff()), 0);
  EXPECT_EQ(caffe_cpu_asum(this->bottom_[3]->count(), this->bottom_[3]->cpu_diff()), 0);
}

// Bad settings and inputs are errors that name the layer and the blob or field.
TYPED_TEST(PyramidROIAlignLayerTest, TestErrors) {
  typedef typename TypeParam::Dtype Dtype;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  this->SetRois(std::vector<Dtype>{0, 1, 1, 4, 5});
  LayerParameter p = this->Param(2);
  p.mutable_pyramid_roi_param()->add_spatial_scale(1.0 / 32);
  PyramidROIAlignLayer<Dtype> extra(p);
  EXPECT_DEATH(extra.SetUp(this->bottom_, this->top_vec_),
      "PyramidROIAlign layer 'pyramid_test': pyramid_roi_param has 4 spatial_scale values "
      "for 3 feature bottoms");
  p = this->Param(2);
  p.mutable_roi_pooling_param()->set_spatial_scale(0.25);
  PyramidROIAlignLayer<Dtype> single_scale(p);
  EXPECT_DEATH(single_scale.SetUp(this->bottom_, this->top_vec_),
      "roi_pooling_param.spatial_scale is not used by PyramidROIAlign");
  p = this->Param(2);
  p.mutable_pyramid_roi_param()->set_spatial_scale(1, -1);
  PyramidROIAlignLayer<Dtype> negative(p);
  EXPECT_DEATH(negative.SetUp(this->bottom_, this->top_vec_),
      "pyramid_roi_param.spatial_scale\\[1\\] \\(bottom 'p3'\\) must be finite and > 0");
  this->bottom_[2]->Reshape(2, 3, 4, 5);
  PyramidROIAlignLayer<Dtype> channels(this->Param(2));
  EXPECT_DEATH(channels.SetUp(this->bottom_, this->top_vec_),
      "every feature bottom must have the same N and C; bottom 'p3' is 2 3 4 5");
  this->bottom_[2]->Reshape(2, 2, 4, 5);
  this->SetRois(std::vector<Dtype>{0, 1, 1, 4, 5, 2, 1, 1, 4, 5});
  PyramidROIAlignLayer<Dtype> batch(this->Param(2));
  batch.SetUp(this->bottom_, this->top_vec_);
  EXPECT_DEATH(batch.Forward(this->bottom_, this->top_vec_),
      "PyramidROIAlign layer 'pyramid_test': bottom 'rois' row 1 has batch index 2; it must "
      "be an integer in \\[0, 2\\) \\(bottom 'p2' has 2 images\\)");
}

}  // namespace caffe
