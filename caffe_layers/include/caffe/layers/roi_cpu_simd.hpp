// Register-wide vectors for the CPU RoI passes' hot loops (GCC vector extensions), used inside
// the per-instruction-set versions of ROI_ISA_VERSIONS (channels_last.hpp), whose kVecBytes
// gives the width. Lanes compute exactly what the scalar code computes: IEEE operations one
// lane at a time, no contraction (-ffp-contract=off), selects as bit operations.
#ifndef CAFFE_ROI_CPU_SIMD_HPP_
#define CAFFE_ROI_CPU_SIMD_HPP_

#include <stdint.h>

// These vectors are only passed between always-inline functions, so the ABI note GCC gives
// for vectors wider than the enabled instruction set does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace caffe {
namespace cpu_simd {

// Vectors of Dtype one register wide (Bytes: 64 AVX-512, 32 AVX2, 16 SSE; GCC vector
// extensions), with lane-wise IEEE operations: a lane of a * b + c is exactly the scalar
// a * b + c (no contraction, -ffp-contract=off). I: the integer lanes of the same width.
template <typename Dtype, int Bytes> struct Simd;
template <int Bytes> struct Simd<float, Bytes> {
  typedef float V __attribute__((vector_size(Bytes)));
  typedef int32_t I __attribute__((vector_size(Bytes)));
};
template <int Bytes> struct Simd<double, Bytes> {
  typedef double V __attribute__((vector_size(Bytes)));
  typedef int64_t I __attribute__((vector_size(Bytes)));
};

template <typename V, typename T>
inline __attribute__((always_inline)) V LoadV(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));  // an unaligned load
  return v;
}

template <typename V, typename T>
inline __attribute__((always_inline)) void StoreV(T* p, const V& v) {
  __builtin_memcpy(p, &v, sizeof(V));  // an unaligned store
}

// Every lane x (no arithmetic, so -0 stays -0).
template <typename V, typename T>
inline __attribute__((always_inline)) V Splat(T x) {
  V v;
  for (unsigned i = 0; i < sizeof(V) / sizeof(v[0]); ++i) v[i] = x;
  return v;
}

// Lane-wise take ? a : b for a mask of all-ones / all-zeros lanes, as bit operations (which
// every instruction set has at every width; GCC lowers a vector ?: on a 64-byte vector
// without AVX-512 lane by lane).
template <typename V, typename I>
inline __attribute__((always_inline)) V Select(const I& take, const V& a, const V& b) {
  // A cast between vectors of one size keeps the bits.
  return (V)((take & (I)a) | (~take & (I)b));  // NOLINT(readability/casting)
}

}  // namespace cpu_simd
}  // namespace caffe

#endif  // CAFFE_ROI_CPU_SIMD_HPP_
