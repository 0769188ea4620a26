// Layout changes between Caffe's (N, C, H, W) blobs and a channels-last (N, H, W, C) copy, in
// which the C values of one pixel are contiguous: what the CPU RoI passes read and write so
// that their innermost loops run over channels with contiguous, vectorisable loads and stores.
#ifndef CAFFE_CHANNELS_LAST_HPP_
#define CAFFE_CHANNELS_LAST_HPP_

namespace caffe {
namespace channels_last {

// out (num, plane, channels) = in (num, channels, plane); plane = H * W. OpenMP, tiled.
template <typename Dtype>
void FromNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

// out (num, channels, plane) += in (num, plane, channels). OpenMP, tiled.
template <typename Dtype>
void AddToNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

}  // namespace channels_last
}  // namespace caffe

#endif  // CAFFE_CHANNELS_LAST_HPP_
