// libFuzzer target of the scene reader (innout/scene.h) and, for every scene it accepts, of the
// renderer: the bytes are parsed from memory by parse_scene; an accepted scene is viewed and
// rendered at 4 x 4 pixels with a few samples, so that everything the file controls on the render
// path (decoder widths, plane sizes, code size, settings, camera) is exercised too.
//
// The reader reports bad files as a Status and lets no exception escape: a refusal is the expected
// outcome and returns normally. Anything else is a finding and aborts - a sanitizer report, an
// exception (std::terminate), or a broken promise checked below (a refusal that leaves data behind,
// an accepted scene beyond the limits, or one that the renderer then refuses).
//
// Build and run: docs/embedding.md, "Fuzzing the scene reader".
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "innout/innout.h"
#include "innout/scene.h"

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "scene_reader_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

// What an accepted scene promises: the limits hold, every tensor holds as many floats as its
// shape says, and the camera is usable.
void check_accepted(const innout::Scene& scene) {
  if (scene.resolution < 1 || scene.resolution > innout::kSceneMaxResolution ||
      scene.coarse_samples < 2 || scene.coarse_samples > innout::kSceneMaxSamples ||
      scene.fine_samples < 0 || scene.fine_samples > innout::kSceneMaxSamples) {
    finding("accepted settings beyond the limits", std::to_string(scene.resolution));
  }
  for (const auto& [name, tensor] : scene.tensors) {
    if (tensor.numel() != static_cast<int64_t>(tensor.data.size())) {
      finding("accepted tensor with data not matching its shape", name);
    }
  }
  const innout::SceneTensor* camera = scene.find("camera");
  if (camera == nullptr || camera->data.size() != 25) finding("accepted without a camera", "");
  const innout::Status status = innout::check_camera(camera->data.data());
  if (!status.ok()) finding("accepted a degenerate camera", status.message);
}

void render_tiny_view(const innout::Scene& scene) {
  innout::SceneStorage storage;
  innout::RenderScene view;
  innout::CameraLabel camera;
  innout::Status status = innout::view_scene(scene, &storage, &view, &camera);
  if (!status.ok()) finding("view_scene refused an accepted scene", status.message);
  // Few samples keep an execution fast; importance sampling still runs when the scene has it
  // (an accepted scene with fine samples has at least 4 coarse ones).
  view.coarse_samples = std::min<int64_t>(view.coarse_samples, 4);
  view.fine_samples = std::min<int64_t>(view.fine_samples, 2);
  const int64_t size = 4, pixels = size * size;
  std::vector<float> features(static_cast<size_t>(view.feature_channels() * pixels));
  std::vector<float> depth(pixels), weight(pixels), opacity(view.has_object() ? pixels : 0);
  innout::RenderTarget target;
  target.resolution = size;
  target.features = features.data();
  target.depth = depth.data();
  target.weight_total = weight.data();
  target.object_opacity = view.has_object() ? opacity.data() : nullptr;
  std::vector<float> workspace(static_cast<size_t>(innout::render_workspace_floats(view, 1)));
  status = innout::cpu::render(view, camera, target, workspace.data(),
                               static_cast<int64_t>(workspace.size()), innout::CpuOptions{1});
  if (!status.ok()) finding("render refused an accepted scene", status.message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  innout::Scene scene;
  const innout::Status status = innout::parse_scene(data, size, &scene);
  if (!status.ok()) {
    if (status.code != innout::StatusCode::kInvalidArgument || status.message.empty() ||
        !scene.tensors.empty() || !scene.metadata.empty()) {
      finding("a refusal without a message, or with data left behind", status.message);
    }
    return 0;
  }
  check_accepted(scene);
  render_tiny_view(scene);
  return 0;
}
