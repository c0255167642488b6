// The CPU renderer (maths in cpp/include/innout/render.h) and the host helpers of innout.h:
// workspace sizing, validation shared with the CUDA backend, scene views and orbit cameras.
#include <cmath>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "innout/innout.h"
#include "innout/validate.h"

namespace innout {
namespace {

bool finite(float value) { return std::isfinite(value); }

Status check_decoder(const DecoderView& d, const std::string& name, int64_t inputs,
                     int64_t outputs) {
  const std::string op = "render";
  INNOUT_RETURN_IF_ERROR(require(d.hidden_weight != nullptr && d.hidden_bias != nullptr &&
                                     d.output_weight != nullptr && d.output_bias != nullptr,
                                 op, name + " decoder weight and bias pointers"));
  INNOUT_RETURN_IF_ERROR(require(d.hidden > 0, op, name + " decoder hidden width > 0"));
  INNOUT_RETURN_IF_ERROR(require(
      d.inputs == inputs, op,
      name + " decoder inputs = " + std::to_string(inputs) + ", got " + std::to_string(d.inputs)));
  return require(d.outputs == outputs, op,
                 name + " decoder outputs = " + std::to_string(outputs) + ", got " +
                     std::to_string(d.outputs));
}

Status check_planes(const TriPlaneView& planes, const std::string& name) {
  return require(
      planes.data != nullptr && planes.channels > 0 && planes.height > 0 && planes.width > 0,
      "render", name + " planes with data and C, H, W > 0");
}

// Whether `scene` has tensor `name` with `dims` dimensions (a dimension < 0 in `sizes` is free)
// and data for every element: view_scene relies on it, and a Scene may be built by hand.
Status check_tensor(const Scene& scene, const std::string& name, std::vector<int64_t> sizes) {
  const SceneTensor* t = scene.find(name);
  bool ok = t != nullptr && t->shape.size() == sizes.size();
  int64_t count = 1;
  for (size_t i = 0; ok && i < sizes.size(); ++i) {
    ok = t->shape[i] > 0 && (sizes[i] < 0 || t->shape[i] == sizes[i]);
    count *= ok ? t->shape[i] : 1;
  }
  ok = ok && static_cast<int64_t>(t->data.size()) == count;
  std::string expected;
  for (int64_t size : sizes)
    expected +=
        (expected.empty() ? "" : ", ") + (size < 0 ? std::string("n") : std::to_string(size));
  return require(ok, "view_scene", "tensor " + name + " of shape [" + expected + "]");
}

Status check_decoder_tensors(const Scene& scene, const std::string& prefix) {
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".hidden.weight", {-1, -1}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".output.weight",
                                      {-1, scene.find(prefix + ".hidden.weight")->shape[0]}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, prefix + ".hidden.bias",
                                      {scene.find(prefix + ".hidden.weight")->shape[0]}));
  return check_tensor(scene, prefix + ".output.bias",
                      {scene.find(prefix + ".output.weight")->shape[0]});
}

}  // namespace

int64_t render_workspace_floats(const RenderScene& scene, int64_t rays_in_flight) {
  if (rays_in_flight < 1) rays_in_flight = 1;
  return render_scratch_floats(scene) * rays_in_flight;
}

Status validate_render(const RenderScene& scene, const RenderTarget& target, const float* workspace,
                       int64_t workspace_floats) {
  const std::string op = "render";
  INNOUT_RETURN_IF_ERROR(check_planes(scene.face_planes, "face"));
  INNOUT_RETURN_IF_ERROR(
      require(scene.face_decoder.outputs >= 2, op, "a face decoder with 1 + F outputs, F >= 1"));
  const int64_t F = scene.feature_channels();
  INNOUT_RETURN_IF_ERROR(
      check_decoder(scene.face_decoder, "face", scene.face_planes.channels, F + 1));
  if (scene.has_object()) {
    INNOUT_RETURN_IF_ERROR(check_planes(scene.object_planes, "object"));
    INNOUT_RETURN_IF_ERROR(require(scene.object_code_size >= 0 && (scene.object_code_size == 0 ||
                                                                   scene.object_code != nullptr),
                                   op, "an object code pointer for object_code_size > 0"));
    INNOUT_RETURN_IF_ERROR(check_decoder(scene.object_decoder, "object",
                                         scene.object_planes.channels + scene.object_code_size,
                                         F + 2));
  }
  INNOUT_RETURN_IF_ERROR(
      require(scene.coarse_samples >= 2, op,
              "coarse_samples >= 2, got " + std::to_string(scene.coarse_samples)));
  INNOUT_RETURN_IF_ERROR(require(scene.fine_samples >= 0, op, "fine_samples >= 0"));
  INNOUT_RETURN_IF_ERROR(require(scene.fine_samples == 0 || scene.coarse_samples >= 4, op,
                                 "coarse_samples >= 4 when fine_samples > 0 (importance "
                                 "sampling), got " +
                                     std::to_string(scene.coarse_samples)));
  INNOUT_RETURN_IF_ERROR(
      require(finite(scene.ray_start) && finite(scene.ray_end) && scene.ray_start < scene.ray_end,
              op, "finite ray_start < ray_end"));
  INNOUT_RETURN_IF_ERROR(
      require(finite(scene.box_warp) && scene.box_warp > 0.0f, op, "a finite box_warp > 0"));
  INNOUT_RETURN_IF_ERROR(require(finite(scene.sigmoid_pad), op, "a finite sigmoid_pad"));
  INNOUT_RETURN_IF_ERROR(
      require(target.resolution >= 1 && target.resolution <= (1 << 15), op,
              "a resolution in [1, 32768], got " + std::to_string(target.resolution)));
  INNOUT_RETURN_IF_ERROR(require(target.features != nullptr, op, "a features output pointer"));
  INNOUT_RETURN_IF_ERROR(require(target.object_opacity == nullptr || scene.has_object(), op,
                                 "no object_opacity output for a scene without an object"));
  INNOUT_RETURN_IF_ERROR(require(workspace != nullptr, op, "a workspace pointer"));
  const int64_t per_ray = render_scratch_floats(scene);
  return require(workspace_floats >= per_ray, op,
                 "a workspace of at least " + std::to_string(per_ray) +
                     " floats (render_workspace_floats), got " + std::to_string(workspace_floats));
}

Status view_scene(const Scene& scene, SceneStorage* storage, RenderScene* view,
                  CameraLabel* camera) {
  const std::string op = "view_scene";
  INNOUT_RETURN_IF_ERROR(require(storage != nullptr && view != nullptr && camera != nullptr, op,
                                 "storage, view and camera pointers"));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, "camera", {25}));
  INNOUT_RETURN_IF_ERROR(check_tensor(scene, "face.planes", {3, -1, -1, -1}));
  INNOUT_RETURN_IF_ERROR(check_decoder_tensors(scene, "face"));
  if (scene.has_object()) {
    INNOUT_RETURN_IF_ERROR(check_tensor(scene, "object.planes", {3, -1, -1, -1}));
    INNOUT_RETURN_IF_ERROR(check_tensor(scene, "object.code", {-1}));
    INNOUT_RETURN_IF_ERROR(check_decoder_tensors(scene, "object"));
  }
  const SceneTensor* planes = scene.find("face.planes");
  const SceneTensor* label = scene.find("camera");
  const auto channels_last = [](const SceneTensor& t, std::vector<float>* out, TriPlaneView* v) {
    const int64_t C = t.shape[1], H = t.shape[2], W = t.shape[3];
    out->assign(t.data.size(), 0.0f);
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x)
            (*out)[((k * H + y) * W + x) * C + c] = t.data[((k * C + c) * H + y) * W + x];
    *v = TriPlaneView{out->data(), C, H, W};
  };
  const auto decoder = [&scene](const std::string& prefix) {
    const SceneTensor& hidden = *scene.find(prefix + ".hidden.weight");
    const SceneTensor& output = *scene.find(prefix + ".output.weight");
    DecoderView d;
    d.hidden_weight = hidden.data.data();
    d.hidden_bias = scene.find(prefix + ".hidden.bias")->data.data();
    d.output_weight = output.data.data();
    d.output_bias = scene.find(prefix + ".output.bias")->data.data();
    d.hidden = hidden.shape[0];
    d.inputs = hidden.shape[1];
    d.outputs = output.shape[0];
    return d;
  };
  RenderScene v;
  channels_last(*planes, &storage->face_planes, &v.face_planes);
  v.face_decoder = decoder("face");
  if (scene.has_object()) {
    channels_last(*scene.find("object.planes"), &storage->object_planes, &v.object_planes);
    v.object_decoder = decoder("object");
    const SceneTensor& code = *scene.find("object.code");
    v.object_code = code.data.data();
    v.object_code_size = code.numel();
  } else {
    storage->object_planes.clear();
  }
  v.coarse_samples = scene.coarse_samples;
  v.fine_samples = scene.fine_samples;
  v.ray_start = scene.ray_start;
  v.ray_end = scene.ray_end;
  v.box_warp = scene.box_warp;
  v.sigmoid_pad = scene.sigmoid_pad;
  *view = v;
  for (int i = 0; i < 25; ++i) camera->values[i] = label->data[i];
  return Status::Ok();
}

CameraLabel orbit_camera(const CameraLabel& camera, float yaw, const float pivot[3]) {
  const float c = std::cos(yaw), s = std::sin(yaw);
  // Rotation about +y: x' = c x + s z, z' = -s x + c z.
  const float rotation[3][3] = {{c, 0.0f, s}, {0.0f, 1.0f, 0.0f}, {-s, 0.0f, c}};
  CameraLabel out = camera;
  const float* m = camera.values;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      float sum = 0.0f;
      for (int k = 0; k < 3; ++k) sum += rotation[i][k] * m[k * 4 + j];
      out.values[i * 4 + j] = sum;
    }
    float position = pivot[i];
    for (int k = 0; k < 3; ++k) position += rotation[i][k] * (m[k * 4 + 3] - pivot[k]);
    out.values[i * 4 + 3] = position;
  }
  return out;
}

namespace cpu {

Status render(const RenderScene& scene, const CameraLabel& camera, const RenderTarget& target,
              float* workspace, int64_t workspace_floats, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate_render(scene, target, workspace, workspace_floats));
  const int64_t per_ray = render_scratch_floats(scene);
  const int64_t rays = target.resolution * target.resolution;
  int64_t slots = workspace_floats / per_ray;
  int threads = resolve_num_threads(options);
  if (threads > slots) threads = static_cast<int>(slots);
  if (threads < 1) threads = 1;
  // Each thread renders whole rays with its own scratch slot; a ray's result does not depend on
  // which thread renders it, so any thread count gives the same image. Every ray decodes the
  // same number of samples, so a static split balances the work.
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
