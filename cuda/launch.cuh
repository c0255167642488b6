// Launch helpers shared by the CUDA launchers (private to cuda/). Every kernel of the backend is
// for_each_kernel: a grid-stride loop over a flat 64-bit index that calls a small functor, and the
// functor only decodes the index and calls the single-source INNOUT_HD maths of the op headers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "innout/cuda.h"

namespace innout {
namespace cuda {
namespace detail {

constexpr int kBlockSize = 256;
// Grids are capped and the kernels loop (grid-stride): 65536 blocks of 256 threads is far more than
// any GPU keeps resident, so the cap costs nothing and keeps the block count in range for any n.
constexpr int64_t kMaxBlocks = 65536;

template <typename Body>
__global__ void __launch_bounds__(kBlockSize) for_each_kernel(int64_t n, Body body) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    body(i);
  }
}

inline cudaStream_t stream_of(const CudaOptions& options) {
  return static_cast<cudaStream_t>(options.stream);
}

inline Status device_error(const char* op, cudaError_t err) {
  return {StatusCode::kDeviceError, std::string(op) + ": " + cudaGetErrorString(err)};
}

// Launches body(i) for i in [0, n) on the caller's stream and reports a launch failure (no device,
// no kernel image for this GPU, ...) as a Status. Asynchronous: errors raised while the kernel runs
// surface at the caller's next synchronisation, as with any CUDA library.
template <typename Body>
Status launch(const char* op, int64_t n, const CudaOptions& options, Body body) {
  if (n <= 0) return Status::Ok();  // a zero-block grid is an invalid configuration
  int64_t blocks = (n + kBlockSize - 1) / kBlockSize;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  for_each_kernel<<<static_cast<unsigned>(blocks), kBlockSize, 0, stream_of(options)>>>(n, body);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? Status::Ok() : device_error(op, err);
}

}  // namespace detail
}  // namespace cuda
}  // namespace innout
