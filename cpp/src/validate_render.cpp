// validate_render (innout.h): the checks of a render's scene description, target and workspace
// that both backends run before touching any buffer.
#include <cmath>
#include <string>

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

}  // namespace

Status validate_render(const RenderScene& scene, const RenderTarget& target, const float* workspace,
                       int64_t workspace_floats) {
  const std::string op = "render";
  INNOUT_RETURN_IF_ERROR(check_planes(scene.face_planes, "face"));
  INNOUT_RETURN_IF_ERROR(
      require(scene.face_decoder.outputs >= 2, op, "a face decoder with 1 + F outputs, F >= 1"));
  // The scene reader's limits bound the per-ray scratch too: render_scratch_floats multiplies
  // these sizes, which must not overflow for a RenderScene built by hand.
  INNOUT_RETURN_IF_ERROR(
      require(scene.coarse_samples <= kSceneMaxSamples && scene.fine_samples <= kSceneMaxSamples,
              op, "coarse_samples and fine_samples <= " + std::to_string(kSceneMaxSamples)));
  INNOUT_RETURN_IF_ERROR(require(
      scene.face_planes.channels <= kSceneMaxChannels &&
          scene.face_decoder.hidden <= kSceneMaxChannels &&
          scene.face_decoder.outputs <= kSceneMaxChannels + 1,
      op, "plane channels, decoder widths and features F <= " + std::to_string(kSceneMaxChannels)));
  if (scene.has_object()) {
    INNOUT_RETURN_IF_ERROR(require(scene.object_planes.channels <= kSceneMaxChannels &&
                                       scene.object_code_size <= kSceneMaxChannels &&
                                       scene.object_decoder.hidden <= kSceneMaxChannels,
                                   op,
                                   "object plane channels, code size and decoder width <= " +
                                       std::to_string(kSceneMaxChannels)));
  }
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

}  // namespace innout
