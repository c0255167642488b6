// The CPU renderer (maths in cpp/include/innout/render.h) and the workspace sizing of innout.h.
#ifdef _OPENMP
#include <omp.h>
#endif

#include "innout/innout.h"
#include "innout/validate.h"

namespace innout {

int64_t render_workspace_floats(const RenderScene& scene, int64_t rays_in_flight) {
  if (rays_in_flight < 1) rays_in_flight = 1;
  return render_scratch_floats(scene) * rays_in_flight;
}

namespace cpu {

Status render(const RenderScene& scene, const CameraLabel& camera, const RenderTarget& target,
              float* workspace, int64_t workspace_floats, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate_render(scene, target, workspace, workspace_floats));
  const int64_t per_ray = render_scratch_floats(scene);
  const int64_t rays = target.resolution * target.resolution;
  int64_t slots = workspace_floats / per_ray;
  // Each thread renders whole rays with its own scratch slot; a ray's result does not depend on
  // which thread renders it, so any thread count gives the same image. Every ray decodes the
  // same number of samples, so a static split balances the work.
  int threads = resolve_num_threads(options);
  if (threads > slots) threads = static_cast<int>(slots);
  if (threads < 1) threads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    float* scratch = workspace + static_cast<int64_t>(omp_get_thread_num()) * per_ray;
#pragma omp for schedule(static)
    for (int64_t ray = 0; ray < rays; ++ray) render_ray(scene, camera, target, ray, scratch);
  }
#else
  for (int64_t ray = 0; ray < rays; ++ray) render_ray(scene, camera, target, ray, workspace);
#endif
  return Status::Ok();
}

}  // namespace cpu
}  // namespace innout
