// Zero-row blobs through stock Caffe layers (proto/0008-zero-row-blobs.patch): a batch with no
// RoIs gives (0, ...) blobs, and every layer a detector places after the RoI layer must take
// them, forward and backward, on CPU and GPU: an empty top, a loss of exactly 0, zero
// gradients. Without the patch these runs abort (Split, Eltwise, Scale, the losses: `Check
// failed: n > 0`; Softmax, SoftmaxWithLoss, Reshape {0, -1}, BatchNorm, Accuracy: SIGFPE; on a
// GPU every zero-size kernel launch fails) or give NaN (EuclideanLoss).
#include <cmath>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/layer.hpp"
#include "caffe/layer_factory.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/util/math_functions.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

typedef vector<vector<int> > Shapes;

template <typename TypeParam>
class ZeroRowsTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  // Sets up the layer `text` (a LayerParameter) on fresh bottoms of `bottom_shapes`, runs
  // Forward and Backward (propagating to bottom i when `propagate[i]`), and checks that the
  // tops have `top_shapes`, that a top with elements (a loss, an accuracy) is exactly 0, that
  // a bottom's diff is zero wherever it has elements, and that the parameters' data and diffs
  // are left as they were (Backward adds nothing to the diffs). Bottoms with
  // elements (e.g. a scale bottom of shape (C,)) are filled with 1 and their diffs with NaN,
  // so a gradient left unwritten shows.
  void Check(const string& text, const Shapes& bottom_shapes, const Shapes& top_shapes,
      const vector<bool>& propagate) {
    LayerParameter param;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &param)) << text;
    vector<shared_ptr<Blob<Dtype> > > bottoms, tops;
    vector<Blob<Dtype>*> bottom_vec, top_vec;
    for (size_t i = 0; i < bottom_shapes.size(); ++i) {
      bottoms.push_back(shared_ptr<Blob<Dtype> >(new Blob<Dtype>(bottom_shapes[i])));
      Blob<Dtype>* b = bottoms.back().get();
      caffe_set(b->count(), Dtype(1), b->mutable_cpu_data());
      caffe_set(b->count(), Dtype(NAN), b->mutable_cpu_diff());
      bottom_vec.push_back(b);
    }
    for (size_t i = 0; i < top_shapes.size(); ++i) {
      tops.push_back(shared_ptr<Blob<Dtype> >(new Blob<Dtype>()));
      top_vec.push_back(tops.back().get());
    }
    shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
    layer->SetUp(bottom_vec, top_vec);
    // Parameter diffs hold 0.5 before Backward; zero rows must add nothing to them, nor change
    // a parameter (e.g. BatchNorm's running statistics: an empty batch has none).
    vector<vector<Dtype> > param_data;
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      Blob<Dtype>* p = layer->blobs()[i].get();
      caffe_set(p->count(), Dtype(0.5), p->mutable_cpu_diff());
      param_data.push_back(vector<Dtype>(p->cpu_data(), p->cpu_data() + p->count()));
    }
    const Dtype loss = layer->Forward(bottom_vec, top_vec);
    EXPECT_EQ(Dtype(0), loss) << param.type();
    for (size_t i = 0; i < top_shapes.size(); ++i) {
      EXPECT_EQ(top_shapes[i], top_vec[i]->shape())
          << param.type() << " top " << i << ": " << top_vec[i]->shape_string();
      // A top with elements (a loss, an accuracy, per-class accuracies) is exactly 0, not 0 / 0.
      for (int j = 0; j < top_vec[i]->count(); ++j) {
        EXPECT_EQ(Dtype(0), top_vec[i]->cpu_data()[j]) << param.type() << " top " << i;
      }
    }
    vector<bool> down(propagate);
    down.resize(bottom_vec.size(), false);
    layer->Backward(top_vec, down, bottom_vec);
    for (size_t i = 0; i < bottom_vec.size(); ++i) {
      if (!down[i]) continue;
      const Dtype* diff = bottom_vec[i]->cpu_diff();
      for (int j = 0; j < bottom_vec[i]->count(); ++j) {
        EXPECT_EQ(Dtype(0), diff[j]) << param.type() << " bottom " << i << " diff " << j;
      }
    }
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      const Blob<Dtype>* p = layer->blobs()[i].get();
      const Dtype* diff = p->cpu_diff();
      int changed = 0, data_changed = 0;
      for (int j = 0; j < p->count(); ++j) {
        changed += (diff[j] != Dtype(0.5));
        data_changed += (p->cpu_data()[j] != param_data[i][j]);
      }
      EXPECT_EQ(0, changed) << param.type() << " param " << i << " diff changed by Backward";
      EXPECT_EQ(0, data_changed) << param.type() << " param " << i << " data changed";
    }
  }

  static vector<int> S(int a) { return vector<int>(1, a); }
  static vector<int> S(int a, int b) {
    vector<int> s(2, a);
    s[1] = b;
    return s;
  }
  static vector<int> S(int a, int b, int c, int d) {
    vector<int> s(4, a);
    s[1] = b;
    s[2] = c;
    s[3] = d;
    return s;
  }
  static Shapes L() { return Shapes(); }
  static Shapes L(const vector<int>& a) { return Shapes(1, a); }
  static Shapes L(const vector<int>& a, const vector<int>& b) {
    Shapes s(1, a);
    s.push_back(b);
    return s;
  }
  static vector<bool> All(int n) { return vector<bool>(n, true); }
  static vector<bool> First() { return vector<bool>(1, true); }  // not the labels
};

TYPED_TEST_CASE(ZeroRowsTest, TestDtypesAndDevices);

TYPED_TEST(ZeroRowsTest, TestInnerProduct) {
  const char* ip = "type: 'InnerProduct' inner_product_param { num_output: 16 "
      "weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' "
      "value: 0.1 } }";
  this->Check(ip, this->L(this->S(0, 256, 5, 5)), this->L(this->S(0, 16)), this->All(1));
  this->Check(ip, this->L(this->S(0, 64)), this->L(this->S(0, 16)), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestConvolution) {
  this->Check("type: 'Convolution' convolution_param { num_output: 8 kernel_size: 3 pad: 1 "
      "weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' "
      "value: 0.1 } }",
      this->L(this->S(0, 128, 14, 14)), this->L(this->S(0, 8, 14, 14)), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestDeconvolution) {
  this->Check("type: 'Deconvolution' convolution_param { num_output: 8 kernel_size: 2 "
      "stride: 2 weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' "
      "value: 0.1 } }",
      this->L(this->S(0, 128, 14, 14)), this->L(this->S(0, 8, 28, 28)), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestNeurons) {
  const vector<int> s = this->S(0, 16);
  this->Check("type: 'ReLU'", this->L(s), this->L(s), this->All(1));
  this->Check("type: 'ReLU' relu_param { negative_slope: 0.1 }", this->L(s), this->L(s),
      this->All(1));
  this->Check("type: 'Sigmoid'", this->L(s), this->L(s), this->All(1));
  this->Check("type: 'Dropout' phase: TRAIN dropout_param { dropout_ratio: 0.5 }",
      this->L(this->S(0, 16, 3, 3)), this->L(this->S(0, 16, 3, 3)), this->All(1));
  this->Check("type: 'Dropout' phase: TRAIN dropout_param { scale_train: false }",
      this->L(s), this->L(s), this->All(1));
  this->Check("type: 'Dropout' phase: TEST", this->L(s), this->L(s), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestSplit) {
  const vector<int> s = this->S(0, 4096);
  this->Check("type: 'Split'", this->L(s), this->L(s, s), this->All(1));
  this->Check("type: 'Split'", this->L(s), this->L(s), this->All(1));
  Shapes three = this->L(s, s);
  three.push_back(s);
  this->Check("type: 'Split'", this->L(s), three, this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestConcat) {
  this->Check("type: 'Concat'", this->L(this->S(0, 16, 2, 2), this->S(0, 8, 2, 2)),
      this->L(this->S(0, 24, 2, 2)), this->All(2));
  this->Check("type: 'Concat' concat_param { axis: 0 }", this->L(this->S(0, 5), this->S(0, 5)),
      this->L(this->S(0, 5)), this->All(2));
}

TYPED_TEST(ZeroRowsTest, TestSlice) {
  this->Check("type: 'Slice' slice_param { axis: 1 slice_point: 16 }",
      this->L(this->S(0, 24, 2, 2)), this->L(this->S(0, 16, 2, 2), this->S(0, 8, 2, 2)),
      this->All(1));
  this->Check("type: 'Slice' slice_param { axis: 1 }", this->L(this->S(0, 8)),
      this->L(this->S(0, 4), this->S(0, 4)), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestEltwise) {
  const vector<int> s = this->S(0, 16, 2, 2);
  this->Check("type: 'Eltwise' eltwise_param { operation: SUM }", this->L(s, s), this->L(s),
      this->All(2));
  this->Check("type: 'Eltwise' eltwise_param { operation: SUM coeff: 1 coeff: -1 }",
      this->L(s, s), this->L(s), this->All(2));
  this->Check("type: 'Eltwise' eltwise_param { operation: PROD }", this->L(s, s), this->L(s),
      this->All(2));
  this->Check("type: 'Eltwise' eltwise_param { operation: MAX }", this->L(s, s), this->L(s),
      this->All(2));
}

TYPED_TEST(ZeroRowsTest, TestReshapeFlatten) {
  const Shapes in = this->L(this->S(0, 256, 5, 5));
  // {0, -1}: the copied 0 would make the inferred dim 0 / 0.
  this->Check("type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }", in,
      this->L(this->S(0, 6400)), this->All(1));
  this->Check("type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 dim: 5 dim: 5 } }", in,
      this->L(this->S(0, 256, 5, 5)), this->All(1));
  this->Check("type: 'Reshape' reshape_param { shape { dim: -1 dim: 6400 } }", in,
      this->L(this->S(0, 6400)), this->All(1));
  this->Check("type: 'Reshape' reshape_param { axis: 1 shape { dim: -1 } }", in,
      this->L(this->S(0, 6400)), this->All(1));
  this->Check("type: 'Flatten'", in, this->L(this->S(0, 6400)), this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestScale) {
  const vector<int> s = this->S(0, 16, 3, 3);
  this->Check("type: 'Scale' scale_param { axis: 1 bias_term: true "
      "filler { type: 'constant' value: 2 } }", this->L(s), this->L(s), this->All(1));
  this->Check("type: 'Scale' scale_param { axis: 1 }", this->L(this->S(0, 16)),
      this->L(this->S(0, 16)), this->All(1));
  // The scale as a bottom of shape (16,) or () (a scalar): its gradient over no rows is 0.
  this->Check("type: 'Scale' scale_param { axis: 1 }", this->L(s, this->S(16)), this->L(s),
      this->All(2));
  this->Check("type: 'Scale' scale_param { axis: 1 }", this->L(this->S(0, 16), this->S(16)),
      this->L(this->S(0, 16)), this->All(2));
  this->Check("type: 'Scale' scale_param { axis: 1 }", this->L(s, vector<int>()), this->L(s),
      this->All(2));
}

// Beyond the list of issue 21: BatchNorm and Pooling (ResNet heads after RoIs), Accuracy (on
// cls_score in R-FCN style train nets).
TYPED_TEST(ZeroRowsTest, TestBatchNormPoolingAccuracy) {
  const vector<int> s = this->S(0, 16, 7, 7);
  this->Check("type: 'BatchNorm' batch_norm_param { use_global_stats: true }", this->L(s),
      this->L(s), this->All(1));
  this->Check("type: 'BatchNorm'", this->L(s), this->L(s), this->All(1));  // training stats
  this->Check("type: 'BatchNorm'", this->L(this->S(0, 16)), this->L(this->S(0, 16)),
      this->All(1));
  this->Check("type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }",
      this->L(s), this->L(this->S(0, 16, 3, 3)), this->All(1));
  this->Check("type: 'Pooling' pooling_param { pool: AVE global_pooling: true }",
      this->L(s), this->L(this->S(0, 16, 1, 1)), this->All(1));
  this->Check("type: 'Accuracy'", this->L(this->S(0, 21), this->S(0)), this->L(vector<int>()),
      vector<bool>());
  this->Check("type: 'Accuracy' accuracy_param { top_k: 5 }",
      this->L(this->S(0, 21), this->S(0)), this->L(vector<int>(), this->S(21)), vector<bool>());
}

TYPED_TEST(ZeroRowsTest, TestSoftmax) {
  this->Check("type: 'Softmax'", this->L(this->S(0, 21)), this->L(this->S(0, 21)),
      this->All(1));
  this->Check("type: 'Softmax'", this->L(this->S(0, 21, 3, 3)), this->L(this->S(0, 21, 3, 3)),
      this->All(1));
}

TYPED_TEST(ZeroRowsTest, TestSoftmaxWithLoss) {
  const Shapes in = this->L(this->S(0, 21), this->S(0));
  const Shapes loss = this->L(vector<int>());
  this->Check("type: 'SoftmaxWithLoss'", in, loss, this->First());
  this->Check("type: 'SoftmaxWithLoss' loss_param { ignore_label: -1 normalize: true }", in,
      loss, this->First());
  this->Check("type: 'SoftmaxWithLoss' loss_param { ignore_label: -1 normalization: VALID }",
      in, loss, this->First());
  this->Check("type: 'SoftmaxWithLoss' loss_param { normalization: BATCH_SIZE }", in, loss,
      this->First());
  this->Check("type: 'SoftmaxWithLoss' loss_param { normalization: FULL }",
      this->L(this->S(0, 2, 3, 3), this->S(0, 1, 3, 3)), loss, this->First());
}

TYPED_TEST(ZeroRowsTest, TestSigmoidCrossEntropyLoss) {
  const Shapes in = this->L(this->S(0, 3, 28, 28), this->S(0, 3, 28, 28));
  const Shapes loss = this->L(vector<int>());
  this->Check("type: 'SigmoidCrossEntropyLoss'", in, loss, this->First());
  this->Check("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 "
      "normalization: VALID }", in, loss, this->First());
  this->Check("type: 'SigmoidCrossEntropyLoss' loss_param { normalization: FULL }", in, loss,
      this->First());
}

TYPED_TEST(ZeroRowsTest, TestEuclideanLoss) {
  this->Check("type: 'EuclideanLoss'", this->L(this->S(0, 84), this->S(0, 84)),
      this->L(vector<int>()), this->All(2));
}

// The shared mechanism: a product over zero terms is y = beta * y (BLAS's gemv returns without
// applying beta when a dimension is 0, and rejects a leading dimension of 0).
TYPED_TEST(ZeroRowsTest, TestEmptyProducts) {
  typedef typename TypeParam::Dtype Dtype;
  Blob<Dtype> a(vector<int>(1, 4)), x(vector<int>(1, 4)), y(vector<int>(1, 4));
  caffe_set(4, Dtype(1), a.mutable_cpu_data());
  caffe_set(4, Dtype(1), x.mutable_cpu_data());
  const bool gpu = Caffe::mode() == Caffe::GPU;
  // y (4) = A^T (0 x 4) x (0) + beta y, then y (4) = A (4 x 0) x (0) + beta y.
  for (int trans = 0; trans < 2; ++trans) {
    const CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
    const int m = trans ? 0 : 4, n = trans ? 4 : 0;
    for (int b = 0; b < 2; ++b) {
      const Dtype beta = b ? Dtype(2) : Dtype(0);
      caffe_set(4, Dtype(3), y.mutable_cpu_data());
      if (gpu) {
#ifndef CPU_ONLY
        caffe_gpu_gemv<Dtype>(t, m, n, Dtype(1), a.gpu_data(), x.gpu_data(), beta,
            y.mutable_gpu_data());
#endif
      } else {
        caffe_cpu_gemv<Dtype>(t, m, n, Dtype(1), a.cpu_data(), x.cpu_data(), beta,
            y.mutable_cpu_data());
      }
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(3 * beta, y.cpu_data()[i]) << "gemv trans " << trans << " beta " << beta;
      }
    }
  }
  // C (2 x 2) = A (2 x 0) B (0 x 2) + beta C, with A and B not transposed (lda = K = 0).
  for (int b = 0; b < 2; ++b) {
    const Dtype beta = b ? Dtype(2) : Dtype(0);
    caffe_set(4, Dtype(3), y.mutable_cpu_data());
    if (gpu) {
#ifndef CPU_ONLY
      caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, 2, 2, 0, Dtype(1), a.gpu_data(),
          x.gpu_data(), beta, y.mutable_gpu_data());
#endif
    } else {
      caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, 2, 2, 0, Dtype(1), a.cpu_data(),
          x.cpu_data(), beta, y.mutable_cpu_data());
    }
    for (int i = 0; i < 4; ++i) EXPECT_EQ(3 * beta, y.cpu_data()[i]) << "gemm beta " << beta;
  }
}

}  // namespace caffe
