// What the RoI layers' kernels (the *_kernels.cuh headers) need from the device, in two
// implementations:
//  * nvcc (__CUDACC__): the real thing. CudaDevice launches <<<CAFFE_GET_BLOCKS(count),
//    CAFFE_CUDA_NUM_THREADS>>> and reads blobs' gpu_data; roi_atomic_add is
//    caffe_gpu_atomic_add.
//  * ROI_HOST_EMULATION (a host compiler, in the emulation test): the same kernel sources as
//    host code. HostEmulatedDevice runs a launch's grid on the calling thread, every thread of
//    every block in turn, the blocks in a shuffled order (a GPU runs them in any order, so
//    atomic additions land in another order than the CPU code's); an atomic add is a plain
//    add. Blobs are read through cpu_data. A launch with a count of 0 (which CUDA rejects with
//    "invalid configuration argument") or past kMaxKernelCount fails a CHECK.
// A layer's device passes are member templates ForwardOn(Device, ...) / BackwardOn(Device, ...)
// written once against this interface: Forward_gpu calls them with CudaDevice, the emulation
// test with HostEmulatedDevice.
#ifndef CAFFE_ROI_DEVICE_CUH_
#define CAFFE_ROI_DEVICE_CUH_

#include "caffe/blob.hpp"
#include "caffe/layers/roi_layer_common.hpp"
#include "caffe/syncedmem.hpp"
#include "caffe/util/math_functions.hpp"

#if defined(__CUDACC__)

#include "caffe/util/gpu_util.cuh"

namespace caffe {

template <typename Dtype>
__device__ inline void roi_atomic_add(Dtype v, Dtype* a) { caffe_gpu_atomic_add(v, a); }

struct CudaDevice {
  template <typename T> static const T* data(const Blob<T>& b) { return b.gpu_data(); }
  template <typename T> static T* mutable_data(Blob<T>* b) { return b->mutable_gpu_data(); }
  template <typename T> static const T* diff(const Blob<T>& b) { return b.gpu_diff(); }
  template <typename T> static T* mutable_diff(Blob<T>* b) { return b->mutable_gpu_diff(); }
  static const void* data(SyncedMemory* m) { return m->gpu_data(); }
  template <typename T> static void set(int n, T v, T* x) { caffe_gpu_set(n, v, x); }
  template <typename T> static void scale(int n, T a, const T* x, T* y) {
    caffe_gpu_scale(n, a, x, y);
  }
  template <typename T> static void dot(int n, const T* x, const T* y, T* out) {
    caffe_gpu_dot(n, x, y, out);
  }
  template <typename... KernelArgs, typename... Args>
  static void launch(void (*kernel)(KernelArgs...), int count, Args... args) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    kernel<<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(args...);
    CUDA_POST_KERNEL_CHECK;
  }
};

}  // namespace caffe

#elif defined(ROI_HOST_EMULATION)

#include <algorithm>
#include <random>
#include <vector>

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef CUDA_KERNEL_LOOP
#define CUDA_KERNEL_LOOP(i, n) \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; \
       i < (n); \
       i += blockDim.x * gridDim.x)
#endif

namespace caffe {

#ifdef CPU_ONLY
const int CAFFE_CUDA_NUM_THREADS = 512;
inline int CAFFE_GET_BLOCKS(const int N) {
  return (N + CAFFE_CUDA_NUM_THREADS - 1) / CAFFE_CUDA_NUM_THREADS;
}
#endif

// The built-in index variables of the emulated thread (unsigned, as CUDA's uint3).
struct EmulatedDim3 {
  unsigned int x, y, z;
};
static EmulatedDim3 threadIdx, blockIdx, blockDim, gridDim;

template <typename Dtype>
inline void roi_atomic_add(Dtype v, Dtype* a) { *a += v; }

struct HostEmulatedDevice {
  template <typename T> static const T* data(const Blob<T>& b) { return b.cpu_data(); }
  template <typename T> static T* mutable_data(Blob<T>* b) { return b->mutable_cpu_data(); }
  template <typename T> static const T* diff(const Blob<T>& b) { return b.cpu_diff(); }
  template <typename T> static T* mutable_diff(Blob<T>* b) { return b->mutable_cpu_diff(); }
  static const void* data(SyncedMemory* m) { return m->cpu_data(); }
  template <typename T> static void set(int n, T v, T* x) { caffe_set(n, v, x); }
  template <typename T> static void scale(int n, T a, const T* x, T* y) {
    caffe_cpu_scale(n, a, x, y);
  }
  template <typename T> static void dot(int n, const T* x, const T* y, T* out) {
    *out = caffe_cpu_dot(n, x, y);
  }
  template <typename... KernelArgs, typename... Args>
  static void launch(void (*kernel)(KernelArgs...), int count, Args... args) {
    launch_dropping(0, kernel, count, args...);
  }
  // A launch that leaves out its last `dropped` blocks in the order they would run: what a
  // kernel that fails to cover its range does, for tests that must catch it.
  template <typename... KernelArgs, typename... Args>
  static void launch_dropping(int dropped, void (*kernel)(KernelArgs...), int count,
      Args... args) {
    CHECK_GT(count, 0) << "emulated launch with a count of 0 (CUDA: invalid configuration "
        "argument)";
    CHECK(RoiKernelCountOk(count)) << "emulated launch over " << count << " elements";
    const int blocks = CAFFE_GET_BLOCKS(count);
    std::vector<int> order(blocks);
    for (int b = 0; b < blocks; ++b) order[b] = b;
    std::mt19937 rng(static_cast<unsigned>(count) * 2654435761u);
    std::shuffle(order.begin(), order.end(), rng);
    gridDim.x = blocks;
    blockDim.x = CAFFE_CUDA_NUM_THREADS;
    gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
    for (int b = 0; b < blocks - dropped; ++b) {
      blockIdx.x = order[b];
      for (int t = 0; t < CAFFE_CUDA_NUM_THREADS; ++t) {
        threadIdx.x = t;
        kernel(args...);
      }
    }
  }
};

}  // namespace caffe

#else
#error "roi_device.cuh is for nvcc, or for host code that defines ROI_HOST_EMULATION"
#endif

#endif  // CAFFE_ROI_DEVICE_CUH_
