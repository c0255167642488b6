// innout's C++ API: render an In-N-Out scene - an EG3D tri-plane field and an optional object
// field - without Python. Link innout::core (CPU) and, in a CUDA build, innout::cuda.
//
//   innout::Scene scene;                                   // a file from `innout export-scene`
//   innout::Status status = innout::load_scene("scene.safetensors", &scene);
//   innout::SceneStorage storage;
//   innout::RenderScene view;
//   innout::CameraLabel camera;
//   if (status.ok()) status = innout::view_scene(scene, &storage, &view, &camera);
//   const int64_t R = scene.resolution;
//   std::vector<float> features(view.feature_channels() * R * R), depth(R * R);
//   std::vector<float> workspace(innout::render_workspace_floats(view, /*rays_in_flight=*/8));
//   innout::RenderTarget target;
//   target.resolution = R;
//   target.features = features.data();  // [F, R, R]; the first three channels are RGB in [-1, 1]
//   target.depth = depth.data();
//   if (status.ok())
//     status = innout::cpu::render(view, camera, target, workspace.data(), workspace.size(), {});
//   if (!status.ok()) std::fprintf(stderr, "%s\n", status.message.c_str());
//
// Conventions: every buffer is caller-owned and the library allocates nothing while rendering;
// no exception crosses the API (errors are Status values with a message); results are identical
// for any thread count. The maths is that of innout.scene.render_scene (deterministic sampling),
// which the tests compare against within 1e-4.
#pragma once

#include <cstdint>
#include <vector>

#include "innout/common.h"
#include "innout/cpu.h"
#include "innout/render.h"
#include "innout/scene.h"

namespace innout {

// Floats of workspace for rendering `rays_in_flight` rays at once (>= 1). The CPU backend needs
// one ray per thread it should use; the CUDA backend renders rays_in_flight rays per launch, so
// more workspace means fewer launches (e.g. all R * R rays of a frame: one launch).
int64_t render_workspace_floats(const RenderScene& scene, int64_t rays_in_flight);

// Checks the scene description, target and workspace (what both backends check before touching
// any buffer). kInvalidArgument with a message naming what was expected.
Status validate_render(const RenderScene& scene, const RenderTarget& target, const float* workspace,
                       int64_t workspace_floats);

// Host copies of what a RenderScene points to that the file stores in another layout (the
// planes, converted to channels-last). Keep it alive, with the Scene, while the view is used.
struct SceneStorage {
  std::vector<float> face_planes;
  std::vector<float> object_planes;
};

// A RenderScene (host pointers into `scene` and `storage`) and the scene's camera, from a scene
// read by load_scene / parse_scene.
Status view_scene(const Scene& scene, SceneStorage* storage, RenderScene* view,
                  CameraLabel* camera);

// The camera `camera` moved along an orbit: rotated by `yaw` radians about the vertical (y) axis
// through `pivot`, still looking the same way relative to the head (EG3D's FFHQ cameras aim at
// (0, 0, 0.2)). Intrinsics are kept.
CameraLabel orbit_camera(const CameraLabel& camera, float yaw, const float pivot[3]);

namespace cpu {

// Renders the composite raw image of `scene` seen from `camera` into `target` (render.h), on the
// CPU with up to options.num_threads threads (capped by the rays the workspace holds).
Status render(const RenderScene& scene, const CameraLabel& camera, const RenderTarget& target,
              float* workspace, int64_t workspace_floats, const CpuOptions& options);

}  // namespace cpu
}  // namespace innout
