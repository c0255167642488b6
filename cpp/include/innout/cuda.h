// CUDA backend (target innout::cuda, present when the library was built with CUDA). Launchers run
// the same single-source per-point / per-ray functions as the CPU backend, asynchronously on the
// caller's stream; all pointers are device pointers owned by the caller.
#pragma once

#include <string>

#include "innout/common.h"
#include "innout/composite_march.h"
#include "innout/importance_sample.h"
#include "innout/render.h"
#include "innout/stratified_sample.h"
#include "innout/triplane_sample.h"

namespace innout {
namespace cuda {

struct CudaOptions {
  void* stream = nullptr;  // cudaStream_t; nullptr = the legacy default stream
};

template <typename T>
Status triplane_sample_forward(const TriplaneSampleParams<T>& params, const CudaOptions& options);
// grad_planes is accumulated with atomics (the scatter of points into texels is inherent).
template <typename T>
Status triplane_sample_backward(const TriplaneSampleParams<T>& params, const CudaOptions& options);

template <typename T>
Status composite_march_forward(const CompositeMarchParams<T>& params, const CudaOptions& options);
template <typename T>
Status composite_march_backward(const CompositeMarchParams<T>& params, const CudaOptions& options);

template <typename T>
Status importance_sample(const ImportanceSampleParams<T>& params, const CudaOptions& options);
template <typename T>
Status stratified_sample(const StratifiedSampleParams<T>& params, const CudaOptions& options);

// The renderer of innout.h on the GPU: every pointer of `scene` and `target` and `workspace` is
// device memory (the camera is passed by value). Rays are rendered in launches of
// workspace_floats / render_scratch_floats(scene) rays, one thread per ray, on options.stream;
// asynchronous like the other launchers. Validation is the CPU backend's (validate_render).
Status render(const RenderScene& scene, const CameraLabel& camera, const RenderTarget& target,
              float* workspace, int64_t workspace_floats, const CudaOptions& options);

// What the CUDA runtime sees on this machine, without failing when there is no GPU or driver.
struct DeviceInfo {
  int runtime_version = 0;  // e.g. 13000; 0 when unknown
  int device_count = 0;
  std::string reason;  // why device_count is 0 (no driver, no device, ...); empty otherwise
};
DeviceInfo device_info();

}  // namespace cuda
}  // namespace innout
