#include <vector>

#include "caffe/layers/roi_align_cpu.hpp"

namespace caffe {
namespace roi_align {

namespace {

// Looks up the precomputed taps of one bin's sample rows (or columns), without copying them.
template <typename Dtype>
struct TapTable {
  const Taps<Dtype>* taps;
  const Taps<Dtype>& operator()(int i) const { return taps[i]; }
};

// The precomputed taps of bin row ph (or column pw) of RoI n.
template <typename Dtype>
TapTable<Dtype> BinTaps(const std::vector<Taps<Dtype> >& taps, const std::vector<int>& start,
    int n, int bin, int grid) {
  const TapTable<Dtype> table = {taps.data() + start[n] + bin * grid};
  return table;
}

template <typename Dtype>
struct PlainAdd {
  void operator()(Dtype* a, Dtype v) const { *a += v; }
};

inline int MapOf(const int* level, int n) { return level ? level[n] : 0; }

}  // namespace

template <typename Dtype>
void CpuPasses<Dtype>::ComputeTaps(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois) {
  boxes_.resize(num_rois);
  tap_y_start_.resize(num_rois + 1);
  tap_x_start_.resize(num_rois + 1);
  tap_y_start_[0] = tap_x_start_[0] = 0;
  for (int n = 0; n < num_rois; ++n) {
    boxes_[n] = roi_box(rois + n * 5, on_map(p, maps[MapOf(level, n)]));
    tap_y_start_[n + 1] = tap_y_start_[n] + p.pooled_h * boxes_[n].grid_h;
    tap_x_start_[n + 1] = tap_x_start_[n] + p.pooled_w * boxes_[n].grid_w;
  }
  taps_y_.resize(tap_y_start_[num_rois]);
  taps_x_.resize(tap_x_start_[num_rois]);
#pragma omp parallel for
  for (int n = 0; n < num_rois; ++n) {
    const Params<Dtype> q = on_map(p, maps[MapOf(level, n)]);
    const Box<Dtype>& b = boxes_[n];
    for (int ph = 0; ph < q.pooled_h; ++ph) {
      for (int iy = 0; iy < b.grid_h; ++iy) {
        taps_y_[tap_y_start_[n] + ph * b.grid_h + iy] =
            sample_taps(b.start_h, b.bin_h, ph, iy, b.grid_h, q.height, q.bi_type,
                q.alignment);
      }
    }
    for (int pw = 0; pw < q.pooled_w; ++pw) {
      for (int ix = 0; ix < b.grid_w; ++ix) {
        taps_x_[tap_x_start_[n] + pw * b.grid_w + ix] =
            sample_taps(b.start_w, b.bin_w, pw, ix, b.grid_w, q.width, q.bi_type,
                q.alignment);
      }
    }
  }
}

template <typename Dtype>
void CpuPasses<Dtype>::Forward(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int channels, Dtype* top, int* argmax) {
  if (num_rois == 0) return;
  ComputeTaps(p, maps, level, rois, num_rois);
  with_tap_count(p.bi_type, [&](auto taps) {
    this->template ForwardTaps<decltype(taps)::value>(p, maps, level, rois, num_rois,
        channels, top, argmax);
  });
}

template <typename Dtype>
template <int K>
void CpuPasses<Dtype>::ForwardTaps(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int channels, Dtype* top, int* argmax) {
  const int bins = p.pooled_h * p.pooled_w;
#pragma omp parallel for schedule(dynamic, 16)
  for (int nc = 0; nc < num_rois * channels; ++nc) {
    const int n = nc / channels, c = nc % channels;
    const MapRef<Dtype>& m = maps[MapOf(level, n)];
    const int batch = static_cast<int>(rois[n * 5]);
    const Dtype* in = m.data + (batch * channels + c) * m.height * m.width;
    const Box<Dtype>& b = boxes_[n];
    int am = -1;
    for (int ph = 0; ph < p.pooled_h; ++ph) {
      const TapTable<Dtype> ty = BinTaps(taps_y_, tap_y_start_, n, ph, b.grid_h);
      for (int pw = 0; pw < p.pooled_w; ++pw) {
        const TapTable<Dtype> tx = BinTaps(taps_x_, tap_x_start_, n, pw, b.grid_w);
        const int o = nc * bins + ph * p.pooled_w + pw;
        top[o] = pool_bin<K>(in, m.width, b.grid_h, b.grid_w, p.is_max, ty, tx, &am);
        if (argmax) argmax[o] = am;
      }
    }
  }
}

template <typename Dtype>
void CpuPasses<Dtype>::Backward(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int channels, const Dtype* top_diff, const int* argmax) {
  if (num_rois == 0) return;
  ComputeTaps(p, maps, level, rois, num_rois);
  with_tap_count(p.bi_type, [&](auto taps) {
    this->template BackwardTaps<decltype(taps)::value>(p, maps, level, rois, num_rois,
        channels, top_diff, argmax);
  });
}

template <typename Dtype>
template <int K>
void CpuPasses<Dtype>::BackwardTaps(const Params<Dtype>& p,
    const std::vector<MapRef<Dtype> >& maps, const int* level, const Dtype* rois,
    int num_rois, int channels, const Dtype* top_diff, const int* argmax) {
  const int bins = p.pooled_h * p.pooled_w;
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < channels; ++c) {
    for (int n = 0; n < num_rois; ++n) {
      const MapRef<Dtype>& m = maps[MapOf(level, n)];
      const int batch = static_cast<int>(rois[n * 5]);
      Dtype* out = m.diff + (batch * channels + c) * m.height * m.width;
      const Box<Dtype>& b = boxes_[n];
      const int nc = n * channels + c;
      for (int ph = 0; ph < p.pooled_h; ++ph) {
        const TapTable<Dtype> ty = BinTaps(taps_y_, tap_y_start_, n, ph, b.grid_h);
        for (int pw = 0; pw < p.pooled_w; ++pw) {
          const TapTable<Dtype> tx = BinTaps(taps_x_, tap_x_start_, n, pw, b.grid_w);
          const int o = nc * bins + ph * p.pooled_w + pw;
          scatter_bin<K>(out, m.width, b.grid_h, b.grid_w, p.is_max,
              argmax ? argmax[o] : -1, top_diff[o], ty, tx, PlainAdd<Dtype>());
        }
      }
    }
  }
}

INSTANTIATE_CLASS(CpuPasses);

}  // namespace roi_align
}  // namespace caffe
