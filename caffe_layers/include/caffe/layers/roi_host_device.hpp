// The one host/device convention of the RoI layers' shared helpers (roi_align_geometry.hpp,
// roi_pooling_geometry.hpp, smooth_l1.hpp): under nvcc, ROI_HD makes a helper callable from
// both CPU and CUDA code; under a plain C++ compiler it is an inline function.
#ifndef CAFFE_ROI_HOST_DEVICE_HPP_
#define CAFFE_ROI_HOST_DEVICE_HPP_

#ifdef __CUDACC__
#define ROI_HD __host__ __device__ __forceinline__
#define ROI_UNROLL _Pragma("unroll")
#else
#define ROI_HD inline
// Fully unrolled tap loops turn Taps::index(k) / weight(k) into plain register reads.
#define ROI_UNROLL _Pragma("GCC unroll 4")
#endif

#endif  // CAFFE_ROI_HOST_DEVICE_HPP_
