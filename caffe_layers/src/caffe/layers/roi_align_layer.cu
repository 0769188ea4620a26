// CUDA RoIAlign: one thread per output element (grid-stride loop), geometry and
// interpolation from roi_align_geometry.hpp (its floating-point and bounds policy applies),
// backward by atomic adds. No launch has a count of 0 or one past kMaxKernelCount. Compiled
// to nothing under the ROI_LAYERS_CPU_ONLY switch (the layer then runs its CPU code in GPU
// mode).
#ifndef ROI_LAYERS_CPU_ONLY

#include <vector>

#include "caffe/layers/roi_align_layer.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/util/gpu_util.cuh"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

// Computes the taps of a bin's sample rows (or columns) on the fly.
template <typename Dtype>
struct TapMaker {
  Dtype start, bin;
  int pooled_index, grid, size, bi_type;
  __device__ roi_align::Taps<Dtype> operator()(int i) const {
    return roi_align::make_taps(roi_align::sample_coord(start, bin, pooled_index, i, grid),
        size, bi_type);
  }
};

template <typename Dtype>
struct AtomicAdd {
  __device__ void operator()(Dtype* a, Dtype v) const { caffe_gpu_atomic_add(v, a); }
};

// Locates output element `index` of (R, C, pooled_h, pooled_w): its bin, RoI box, input plane
// offset and the tap makers of its sample rows and columns.
template <typename Dtype>
__device__ void locate(int index, const Dtype* rois, const roi_align::Params<Dtype>& p,
    int channels, roi_align::Box<Dtype>* b, int* plane_offset, TapMaker<Dtype>* ty,
    TapMaker<Dtype>* tx) {
  const int pw = index % p.pooled_w;
  const int ph = (index / p.pooled_w) % p.pooled_h;
  const int c = (index / p.pooled_w / p.pooled_h) % channels;
  const int n = index / p.pooled_w / p.pooled_h / channels;
  const Dtype* roi = rois + n * 5;
  const int batch = static_cast<int>(roi[0]);
  *b = roi_align::roi_box(roi, p);
  *plane_offset = (batch * channels + c) * p.height * p.width;
  const TapMaker<Dtype> y = {b->start_h, b->bin_h, ph, b->grid_h, p.height, p.bi_type};
  const TapMaker<Dtype> x = {b->start_w, b->bin_w, pw, b->grid_w, p.width, p.bi_type};
  *ty = y;
  *tx = x;
}

template <int K, typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) ROIAlignForward(
    const int nthreads, const Dtype* data, const Dtype* rois,
    const roi_align::Params<Dtype> p, const int channels, Dtype* top, int* argmax) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    roi_align::Box<Dtype> b;
    int offset;
    TapMaker<Dtype> ty, tx;
    locate(index, rois, p, channels, &b, &offset, &ty, &tx);
    int am = -1;
    top[index] = roi_align::pool_bin<K>(data + offset, p.width, b.grid_h, b.grid_w,
        p.is_max, ty, tx, &am);
    if (p.is_max) argmax[index] = am;
  }
}

template <int K, typename Dtype>
__global__ void __launch_bounds__(CAFFE_CUDA_NUM_THREADS, 1) ROIAlignBackward(
    const int nthreads, const Dtype* top_diff, const int* argmax, const Dtype* rois,
    const roi_align::Params<Dtype> p, const int channels, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    roi_align::Box<Dtype> b;
    int offset;
    TapMaker<Dtype> ty, tx;
    locate(index, rois, p, channels, &b, &offset, &ty, &tx);
    roi_align::scatter_bin<K>(bottom_diff + offset, p.width, b.grid_h, b.grid_w,
        p.is_max, p.is_max ? argmax[index] : -1, top_diff[index], ty, tx,
        AtomicAdd<Dtype>());
  }
}

}  // namespace

template <typename Dtype>
void ROIAlignLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) return;  // no RoIs (or no channels): launch nothing
  CheckRoiKernelCount(this->layer_param_, count, "top");
  CheckRoiBatchIndices(this->layer_param_, *bottom[1], bottom[0]->num());
  const Dtype* data = bottom[0]->gpu_data();
  const Dtype* rois = bottom[1]->gpu_data();
  Dtype* top_data = top[0]->mutable_gpu_data();
  int* argmax = params_.is_max ? argmax_.mutable_gpu_data() : NULL;
  roi_align::with_tap_count(params_.bi_type, [&](auto taps) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    ROIAlignForward<decltype(taps)::value, Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(count, data, rois, params_, channels_, top_data, argmax);
  });
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void ROIAlignLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] || bottom[0]->count() == 0) return;  // nothing to write
  Dtype* diff = bottom[0]->mutable_gpu_diff();
  caffe_gpu_set(bottom[0]->count(), Dtype(0), diff);
  const int count = top[0]->count();
  if (count == 0) return;
  CheckRoiKernelCount(this->layer_param_, count, "top");
  const Dtype* top_diff = top[0]->gpu_diff();
  const Dtype* rois = bottom[1]->gpu_data();
  const int* argmax = params_.is_max ? argmax_.gpu_data() : NULL;
  roi_align::with_tap_count(params_.bi_type, [&](auto taps) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    ROIAlignBackward<decltype(taps)::value, Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(count, top_diff, argmax, rois, params_, channels_, diff);
  });
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(ROIAlignLayer);

}  // namespace caffe

#endif  // ROI_LAYERS_CPU_ONLY
