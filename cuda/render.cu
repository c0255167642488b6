// CUDA launcher of the renderer (maths in cpp/include/innout/render.h): one thread per ray, each
// with its own slot of the caller's workspace, in launches of as many rays as the workspace holds.
#include "innout/cuda.h"
#include "innout/innout.h"
#include "innout/validate.h"
#include "launch.cuh"

namespace innout {
namespace cuda {
namespace {

struct RenderRays {
  RenderScene scene;
  CameraLabel camera;
  RenderTarget target;
  float* workspace;
  int64_t per_ray;
  int64_t first_ray;
  __device__ void operator()(int64_t i) const {
    render_ray(scene, camera, target, first_ray + i, workspace + i * per_ray);
  }
};

}  // namespace

Status render(const RenderScene& scene, const CameraLabel& camera, const RenderTarget& target,
              float* workspace, int64_t workspace_floats, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate_render(scene, target, workspace, workspace_floats));
  const int64_t per_ray = render_scratch_floats(scene);
  const int64_t rays = target.resolution * target.resolution;
  const int64_t slots = workspace_floats / per_ray;
  for (int64_t first = 0; first < rays; first += slots) {
    const int64_t count = rays - first < slots ? rays - first : slots;
    INNOUT_RETURN_IF_ERROR(detail::launch(
        "render", count, options, RenderRays{scene, camera, target, workspace, per_ray, first}));
  }
  return Status::Ok();
}

}  // namespace cuda
}  // namespace innout
