// What the CUDA runtime sees: safe to call on a machine with no GPU or no driver, where it reports
// why instead of failing (the static cudart loads the driver lazily and returns an error code).
#include <cuda_runtime.h>

#include "innout/cuda.h"

namespace innout {
namespace cuda {

DeviceInfo device_info() {
  DeviceInfo info;
  int version = 0;
  // The runtime version is compiled into cudart, so it is known even without a driver.
  if (cudaRuntimeGetVersion(&version) == cudaSuccess) info.runtime_version = version;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.reason = cudaGetErrorString(err);
  } else {
    info.device_count = count;
    if (count == 0) info.reason = "the CUDA runtime reports no devices";
  }
  // Clear the error so that it does not resurface as the "last error" of an unrelated later call.
  cudaGetLastError();
  return info;
}

}  // namespace cuda
}  // namespace innout
