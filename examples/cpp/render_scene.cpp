// Renders an exported innout scene (`innout export-scene RUN --frame N --out scene.safetensors`)
// along an orbit of the camera and writes one PPM image per view, with timings. No Python needed.
//
//   render_scene SCENE [--out DIR] [--views N] [--yaw DEGREES] [--threads T] [--raw FILE]
//
// --views N (default 8) views spread over +-yaw degrees (default 25) around the scene's own
// camera; --raw FILE also writes the scene's own view as float32: features [F, R, R], then depth
// [R, R], then (with an object) the object's opacity [R, R].
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "innout/innout.h"

namespace {

struct Options {
  std::string scene, out = ".", raw;
  int views = 8, threads = 0;
  float yaw_degrees = 25.0f;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--out" && has_value) {
      o->out = argv[++i];
    } else if (arg == "--views" && has_value) {
      o->views = std::atoi(argv[++i]);
    } else if (arg == "--yaw" && has_value) {
      o->yaw_degrees = static_cast<float>(std::atof(argv[++i]));
    } else if (arg == "--threads" && has_value) {
      o->threads = std::atoi(argv[++i]);
    } else if (arg == "--raw" && has_value) {
      o->raw = argv[++i];
    } else if (o->scene.empty() && arg.rfind("--", 0) != 0) {
      o->scene = arg;
    } else {
      return false;
    }
  }
  return !o->scene.empty() && o->views >= 1;
}

// RGB features in [-1, 1] -> 8-bit binary PPM.
bool write_ppm(const std::string& path, const std::vector<float>& features, int64_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  std::fprintf(file, "P6\n%lld %lld\n255\n", static_cast<long long>(size),
               static_cast<long long>(size));
  const int64_t pixels = size * size;
  std::vector<unsigned char> bytes(pixels * 3);
  for (int64_t p = 0; p < pixels; ++p) {
    for (int64_t c = 0; c < 3; ++c) {
      const float value = (features[c * pixels + p] + 1.0f) * 127.5f;
      bytes[p * 3 + c] = static_cast<unsigned char>(value < 0.0f     ? 0.0f
                                                    : value > 255.0f ? 255.0f
                                                                     : value);
    }
  }
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  return std::fclose(file) == 0 && ok;
}

bool write_raw(const std::string& path, const std::vector<std::vector<float>>& arrays) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  bool ok = true;
  for (const auto& a : arrays)
    ok = ok && std::fwrite(a.data(), sizeof(float), a.size(), file) == a.size();
  return std::fclose(file) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, &options)) {
    std::fprintf(stderr,
                 "usage: render_scene SCENE [--out DIR] [--views N] [--yaw DEGREES] "
                 "[--threads T] [--raw FILE]\n");
    return 2;
  }
  innout::Scene scene;
  innout::SceneStorage storage;
  innout::RenderScene view;
  innout::CameraLabel camera;
  innout::Status status = innout::load_scene(options.scene, &scene);
  if (status.ok()) status = innout::view_scene(scene, &storage, &view, &camera);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.message.c_str());
    return 1;
  }
  const int64_t size = scene.resolution;
  const innout::CpuOptions cpu{options.threads};
  const int threads = innout::cpu::resolve_num_threads(cpu);
  std::vector<float> features(view.feature_channels() * size * size), depth(size * size);
  std::vector<float> opacity(view.has_object() ? size * size : 0);
  std::vector<float> workspace(innout::render_workspace_floats(view, threads));
  innout::RenderTarget target;
  target.resolution = size;
  target.features = features.data();
  target.depth = depth.data();
  target.object_opacity = view.has_object() ? opacity.data() : nullptr;
  std::printf("%s: %lldx%lld raw image, %lld + %lld samples per ray, %s, %d thread(s)\n",
              options.scene.c_str(), static_cast<long long>(size), static_cast<long long>(size),
              static_cast<long long>(view.coarse_samples),
              static_cast<long long>(view.fine_samples),
              view.has_object() ? "face + object" : "face only", threads);

  if (!options.raw.empty()) {
    status = innout::cpu::render(view, camera, target, workspace.data(),
                                 static_cast<int64_t>(workspace.size()), cpu);
    if (!status.ok() || !write_raw(options.raw, {features, depth, opacity})) {
      std::fprintf(stderr, "error: %s\n",
                   status.ok() ? ("cannot write " + options.raw).c_str() : status.message.c_str());
      return 1;
    }
  }
  const float pivot[3] = {0.0f, 0.0f, 0.2f};  // EG3D's FFHQ cameras look at this point
  const float pi = 3.14159265358979f;
  double total_ms = 0.0;
  for (int v = 0; v < options.views; ++v) {
    const float t = options.views == 1 ? 0.0f : 2.0f * v / (options.views - 1) - 1.0f;
    const innout::CameraLabel orbit =
        innout::orbit_camera(camera, t * options.yaw_degrees * pi / 180.0f, pivot);
    const auto start = std::chrono::steady_clock::now();
    status = innout::cpu::render(view, orbit, target, workspace.data(),
                                 static_cast<int64_t>(workspace.size()), cpu);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!status.ok()) {
      std::fprintf(stderr, "error: %s\n", status.message.c_str());
      return 1;
    }
    total_ms += ms;
    char name[64];
    std::snprintf(name, sizeof(name), "/view_%03d.ppm", v);
    if (!write_ppm(options.out + name, features, size)) {
      std::fprintf(stderr, "error: cannot write %s%s\n", options.out.c_str(), name);
      return 1;
    }
    std::printf("view %d/%d  yaw %+6.1f deg  %8.1f ms\n", v + 1, options.views,
                t * options.yaw_degrees, ms);
  }
  std::printf("%d views in %.1f ms (%.1f ms per view) -> %s\n", options.views, total_ms,
              total_ms / options.views, options.out.c_str());
  return 0;
}
