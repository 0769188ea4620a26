// Layout changes between Caffe's (N, C, H, W) blobs and a channels-last (N, H, W, C) copy, in
// which the C values of one pixel are contiguous: what the CPU RoI passes read and write so
// that their innermost loops run over channels with contiguous, vectorisable loads and stores.
#ifndef CAFFE_CHANNELS_LAST_HPP_
#define CAFFE_CHANNELS_LAST_HPP_

#include <stdint.h>
#include <stdlib.h>

#include <new>
#include <vector>

// The CPU RoI passes' hot loops are compiled once per instruction set (AVX-512, AVX2, plain
// x86-64) and chosen at run time by Isa() below; elsewhere, or with ROI_NATIVE
// (Makefile.config: -march=native), there is one plain version compiled for the build's
// target. ROI_ISA_VERSIONS(f, params, body) defines fAvx512 / fAvx2 / fPlain (each the same
// body, compiled for its instruction set, in which kVecBytes is the width of its vector
// registers: 64, 32, 16); ROI_ISA_PICK(f) is the one for Isa().
// ROI_X86_INTRINSICS: GCC on x86-64, where the transposes use AVX-512 / AVX2 intrinsics in
// functions of their own target (also with ROI_NATIVE, where Isa() is the build's level).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ROI_X86_INTRINSICS 1
#endif
#if defined(ROI_X86_INTRINSICS) && !defined(ROI_NATIVE)
#define ROI_ISA_X86 1
#define ROI_ISA_VERSIONS(f, params, body) \
  __attribute__((target("avx512f"))) void f##Avx512 params { \
    const int kVecBytes = 64; (void)kVecBytes; body; } \
  __attribute__((target("avx2"))) void f##Avx2 params { \
    const int kVecBytes = 32; (void)kVecBytes; body; } \
  void f##Plain params { const int kVecBytes = 16; (void)kVecBytes; body; }
#define ROI_ISA_PICK(f) \
  (::caffe::channels_last::Isa() == ::caffe::channels_last::kAvx512 ? f##Avx512 \
      : (::caffe::channels_last::Isa() == ::caffe::channels_last::kAvx2 ? f##Avx2 : f##Plain))
#else
#if defined(__AVX512F__)
#define ROI_NATIVE_VEC_BYTES 64
#elif defined(__AVX2__)
#define ROI_NATIVE_VEC_BYTES 32
#else
#define ROI_NATIVE_VEC_BYTES 16
#endif
#define ROI_ISA_VERSIONS(f, params, body) \
  void f##Plain params { const int kVecBytes = ROI_NATIVE_VEC_BYTES; (void)kVecBytes; body; }
#define ROI_ISA_PICK(f) f##Plain
#endif

namespace caffe {
namespace channels_last {

// Outputs of more bytes than this are written with Transpose's streaming stores: they do not
// fit a core's L2 cache, so reading their lines in before writing them only costs bandwidth.
const int64_t kStreamBytes = 4 << 20;

// The instruction sets the CPU passes have versions for.
enum IsaLevel { kPlain = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU runs (off x86-64: kPlain; with ROI_NATIVE: the level the build
// was compiled for), lowered by the
// environment variable ROI_CPU_ISA=plain|avx2|avx512 (read once), which lets one machine
// measure and test the versions another machine would run. An unknown value is an error that
// names the variable and the value.
IsaLevel Isa();

// Below this many elements of work a CPU RoI pass runs on the calling thread: starting and
// joining an OpenMP team costs more than it saves (the gradient checker's thousands of
// passes over tiny blobs, for instance).
const int64_t kParallelWork = 1 << 15;

// dst (cols, rows) = the transpose of src (rows, cols): dst[c * dst_stride + r] =
// src[r * src_stride + c]. One thread. float and int go through 16 x 16 (AVX-512) or 8 x 8
// (AVX2) register tiles at `isa` (at most Isa()), double and the plain level through 8 x 8
// blocks; it copies bits, so every level gives the same result. stream: dst is part of an
// output larger than the cache, written once; with AVX-512 or AVX2 and rows of at most 256
// values, dst is then staged in L1 and written with non-temporal stores, which skip
// reading each line in first.
void Transpose(const float* src, int64_t src_stride, int rows, int cols, float* dst,
    int64_t dst_stride, bool stream = false, IsaLevel isa = Isa());
void Transpose(const int* src, int64_t src_stride, int rows, int cols, int* dst,
    int64_t dst_stride, bool stream = false, IsaLevel isa = Isa());
void Transpose(const double* src, int64_t src_stride, int rows, int cols, double* dst,
    int64_t dst_stride, bool stream = false, IsaLevel isa = Isa());

// An allocator of 64-byte aligned memory, so that the pixels of a channels-last copy with a
// multiple of 16 channels start on cache lines: a 64-byte vector load then reads one line,
// not two.
template <typename T>
struct AlignedAllocator {
  typedef T value_type;
  AlignedAllocator() {}
  template <typename U> AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(T)) != 0) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { free(p); }
  template <typename U> bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U> bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

// A channels-last copy of a map (or its gradient).
template <typename T>
using Buffer = std::vector<T, AlignedAllocator<T> >;

// The row length for a scratch tile of n-value rows that Transpose reads down its columns:
// n rounded up to 16 values, plus 16, so that the rows of a column do not all fall into the
// same few cache sets, as they would at a power-of-two stride such as 512 channels.
inline int PaddedRow(int n) { return (n + 15) / 16 * 16 + 16; }

// out (num, plane, channels) = in (num, channels, plane); plane = H * W. OpenMP, tiled.
template <typename Dtype>
void FromNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

// out (num, channels, plane) = in (num, plane, channels). OpenMP, tiled.
template <typename Dtype>
void ToNchw(const Dtype* in, int num, int channels, int plane, Dtype* out);

// x[0, count) = 0, OpenMP.
template <typename Dtype>
void Zero(int64_t count, Dtype* x);

}  // namespace channels_last
}  // namespace caffe

#endif  // CAFFE_CHANNELS_LAST_HPP_
