// ctest of the C++ rendering API (innout/innout.h): argument validation, camera rays, the decoder,
// closed-form renders of opaque fields, thread-count invariance, scene views and orbit cameras.
// Built with CUDA (INNOUT_TEST_CUDA), it also compares cuda::render with cpu::render.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "innout/innout.h"

#ifdef INNOUT_TEST_CUDA
#include <cuda_runtime.h>

#include "innout/cuda.h"
#endif

using innout_test::check;

namespace {

// A scene whose arrays live in this struct (host memory).
struct OwnedScene {
  std::vector<float> face_planes, face_w1, face_b1, face_w2, face_b2;
  std::vector<float> object_planes, object_w1, object_b1, object_w2, object_b2, code;
  innout::RenderScene view;
};

std::vector<float> random_vector(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Random planes and decoders (C channels, H x W planes, 16 hidden units, F features).
OwnedScene random_scene(bool with_object, int64_t C = 8, int64_t H = 12, int64_t F = 4) {
  std::mt19937 rng(7);
  OwnedScene s;
  const int64_t hidden = 16, code = 3;
  s.face_planes = random_vector(rng, 3 * H * H * C, 1.0f);
  s.face_w1 = random_vector(rng, hidden * C, 0.5f);
  s.face_b1 = random_vector(rng, hidden, 0.5f);
  s.face_w2 = random_vector(rng, (F + 1) * hidden, 0.5f);
  s.face_b2 = random_vector(rng, F + 1, 0.5f);
  s.face_b2[0] += 4.0f;  // densities around the level where rays become opaque
  innout::RenderScene& v = s.view;
  v.face_planes = {s.face_planes.data(), C, H, H};
  v.face_decoder = {
      s.face_w1.data(), s.face_b1.data(), s.face_w2.data(), s.face_b2.data(), C, hidden, F + 1};
  if (with_object) {
    s.object_planes = random_vector(rng, 3 * H * H * C, 1.0f);
    s.object_w1 = random_vector(rng, hidden * (C + code), 0.5f);
    s.object_b1 = random_vector(rng, hidden, 0.5f);
    s.object_w2 = random_vector(rng, (F + 2) * hidden, 0.5f);
    s.object_b2 = random_vector(rng, F + 2, 0.5f);
    s.code = random_vector(rng, code, 1.0f);
    v.object_planes = {s.object_planes.data(), C, H, H};
    v.object_decoder = {s.object_w1.data(),
                        s.object_b1.data(),
                        s.object_w2.data(),
                        s.object_b2.data(),
                        C + code,
                        hidden,
                        F + 2};
    v.object_code = s.code.data();
    v.object_code_size = code;
  }
  v.coarse_samples = 12;
  v.fine_samples = 10;
  return s;
}

// EG3D's frontal FFHQ camera: 2.7 units from the origin on +z, looking at (0, 0, 0.2).
innout::CameraLabel frontal_camera() {
  innout::CameraLabel c{};
  // OpenCV camera axes in the world: x = -world x, y = -world y, z = -world z (looking toward -z).
  const float m[16] = {-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7f, 0, 0, 0, 1};
  const float k[9] = {4.2647f, 0, 0.5f, 0, 4.2647f, 0.5f, 0, 0, 1};
  for (int i = 0; i < 16; ++i) c.values[i] = m[i];
  for (int i = 0; i < 9; ++i) c.values[16 + i] = k[i];
  return c;
}

struct Image {
  std::vector<float> features, depth, weight, opacity;
  innout::RenderTarget target;
  Image(const innout::RenderScene& scene, int64_t size) {
    const int64_t pixels = size * size;
    features.assign(scene.feature_channels() * pixels, -7.0f);
    depth.assign(pixels, -7.0f);
    weight.assign(pixels, -7.0f);
    opacity.assign(scene.has_object() ? pixels : 0, -7.0f);
    target.resolution = size;
    target.features = features.data();
    target.depth = depth.data();
    target.weight_total = weight.data();
    target.object_opacity = scene.has_object() ? opacity.data() : nullptr;
  }
};

innout::Status render(const innout::RenderScene& scene, const innout::CameraLabel& camera,
                      Image* image, int64_t rays_in_flight, int threads) {
  std::vector<float> workspace(innout::render_workspace_floats(scene, rays_in_flight));
  return innout::cpu::render(scene, camera, image->target, workspace.data(),
                             static_cast<int64_t>(workspace.size()), innout::CpuOptions{threads});
}

bool near(float a, float b, float tolerance) { return std::fabs(a - b) <= tolerance; }

void test_validation() {
  OwnedScene s = random_scene(false);
  const innout::CameraLabel camera = frontal_camera();
  const auto expect_error = [&](const innout::RenderScene& scene, innout::RenderTarget target,
                                int64_t workspace, const std::string& expected) {
    std::vector<float> buffer(workspace > 0 ? workspace : 1);
    const innout::Status status =
        innout::cpu::render(scene, camera, target, buffer.data(), workspace, {});
    check(status.code == innout::StatusCode::kInvalidArgument &&
              status.message.find(expected) != std::string::npos,
          "expected an error naming '" + expected + "', got '" + status.message + "'");
  };
  Image image(s.view, 4);
  const int64_t enough = innout::render_workspace_floats(s.view, 1);
  expect_error(s.view, image.target, enough - 1, "workspace of at least");
  innout::RenderTarget no_features = image.target;
  no_features.features = nullptr;
  expect_error(s.view, no_features, enough, "features output pointer");
  innout::RenderTarget opacity = image.target;
  opacity.object_opacity = image.depth.data();
  expect_error(s.view, opacity, enough, "without an object");
  innout::RenderTarget zero = image.target;
  zero.resolution = 0;
  expect_error(s.view, zero, enough, "resolution in [1, 32768]");
  innout::RenderScene bad = s.view;
  bad.face_decoder.inputs = 5;
  expect_error(bad, image.target, enough, "face decoder inputs = 8, got 5");
  bad = s.view;
  bad.coarse_samples = 3;
  expect_error(bad, image.target, innout::render_workspace_floats(bad, 1), "coarse_samples >= 4");
  bad = s.view;
  bad.ray_end = bad.ray_start;
  expect_error(bad, image.target, enough, "ray_start < ray_end");
  bad = s.view;
  bad.face_planes.data = nullptr;
  expect_error(bad, image.target, enough, "face planes");
  OwnedScene o = random_scene(true);
  bad = o.view;
  bad.object_decoder.outputs = 5;  // F + 2 = 6
  Image object_image(o.view, 4);
  expect_error(bad, object_image.target, innout::render_workspace_floats(bad, 1),
               "object decoder outputs = 6, got 5");
  check(
      std::all_of(image.features.begin(), image.features.end(), [](float x) { return x == -7.0f; }),
      "a refused render writes nothing");
}

void test_camera_rays() {
  const innout::CameraLabel camera = frontal_camera();
  float origin[3], direction[3];
  // One pixel: its centre is the principal point, so the ray is the optical axis (-z).
  innout::camera_ray(camera, 1, 0, 0, origin, direction);
  check(near(origin[2], 2.7f, 1e-6f) && near(direction[2], -1.0f, 1e-6f) &&
            near(direction[0], 0.0f, 1e-6f) && near(direction[1], 0.0f, 1e-6f),
        "the principal point's ray is the optical axis");
  // Pixel (row 0, col 3) of 4: centre x = 0.875, y = 0.125; camera coordinates (x - 0.5) / f.
  innout::camera_ray(camera, 4, 0, 3, origin, direction);
  const float xc = 0.375f / 4.2647f, yc = -0.375f / 4.2647f;
  const float length = std::sqrt(xc * xc + yc * yc + 1.0f);
  check(near(direction[0], -xc / length, 1e-6f) && near(direction[1], -yc / length, 1e-6f) &&
            near(direction[2], -1.0f / length, 1e-6f),
        "an off-centre pixel's ray follows the intrinsics (OpenCV axes)");
}

void test_decoder() {
  // y = W2 softplus(W1 x + b1) + b2 by hand.
  const float w1[4] = {1.0f, -2.0f, 0.5f, 3.0f}, b1[2] = {0.25f, 25.0f};
  const float w2[2] = {2.0f, -1.0f}, b2[1] = {0.5f};
  const innout::DecoderView d{w1, b1, w2, b2, 2, 2, 1};
  const float x[2] = {0.5f, 0.25f};
  float hidden[2], y[1];
  innout::decoder_forward(d, x, hidden, y);
  const float h0 = std::log1p(std::exp(0.5f - 0.5f + 0.25f));
  const float h1 = 0.25f + 0.75f + 25.0f;  // above softplus' threshold 20: the identity
  check(near(hidden[0], h0, 1e-6f) && near(hidden[1], h1, 1e-5f), "decoder hidden layer");
  check(near(y[0], 2.0f * h0 - h1 + 0.5f, 1e-5f), "decoder output");
}

// A field that is opaque from the first sample on, with constant colour: every pixel is that
// colour (2 c - 1), its weights sum to 1 and its depth is the first interval's midpoint.
void test_opaque_constant_field() {
  OwnedScene s = random_scene(true);
  std::fill(s.face_w1.begin(), s.face_w1.end(), 0.0f);
  std::fill(s.face_w2.begin(), s.face_w2.end(), 0.0f);
  s.face_b2 = {200.0f, 0.0f, 1.0f, -1.0f, 2.0f};
  std::fill(s.object_w1.begin(), s.object_w1.end(), 0.0f);
  std::fill(s.object_w2.begin(), s.object_w2.end(), 0.0f);
  const innout::CameraLabel camera = frontal_camera();
  const float pad = s.view.sigmoid_pad;
  const auto colour = [pad](float logit) {
    return 2.0f * ((1.0f / (1.0f + std::exp(-logit))) * (1.0f + 2.0f * pad) - pad) - 1.0f;
  };
  for (float blend_logit : {-30.0f, 30.0f}) {
    // Object: opaque, logits (-2, 0, 1, 3); blend sigmoid(+-30) picks one field.
    s.object_b2 = {200.0f, -2.0f, 0.0f, 1.0f, 3.0f, blend_logit};
    Image image(s.view, 5);
    const innout::Status status = render(s.view, camera, &image, 3, 2);
    check(status.ok(), "opaque render: " + status.message);
    const bool object = blend_logit > 0;
    const float spacing = (s.view.ray_end - s.view.ray_start) / (s.view.coarse_samples - 1);
    for (int64_t p = 0; p < 25; ++p) {
      for (int64_t c = 0; c < 4; ++c) {
        const float expected = colour(object ? s.object_b2[1 + c] : s.face_b2[1 + c]);
        check(near(image.features[c * 25 + p], expected, 1e-4f),
              "opaque pixel colour (object " + std::to_string(object) + ")");
      }
      check(near(image.weight[p], 1.0f, 1e-5f), "opaque pixel weight 1");
      check(near(image.opacity[p], object ? 1.0f : 0.0f, 1e-5f), "object opacity");
      // Importance samples crowd into the first interval, so the depth is within it.
      check(image.depth[p] >= s.view.ray_start && image.depth[p] <= s.view.ray_start + spacing,
            "opaque pixel depth within the first interval");
    }
  }
}

void test_thread_and_workspace_invariance() {
  for (bool with_object : {false, true}) {
    OwnedScene s = random_scene(with_object);
    const innout::CameraLabel camera = frontal_camera();
    Image one(s.view, 9), many(s.view, 9);
    check(render(s.view, camera, &one, 1, 1).ok(), "render with one ray in flight");
    check(render(s.view, camera, &many, 81, 2).ok(), "render with 81 rays in flight");
    check(one.features == many.features && one.depth == many.depth && one.weight == many.weight &&
              one.opacity == many.opacity,
          "identical results for any thread count and workspace size");
    bool finite = true, varied = false;
    for (float x : one.features) finite = finite && std::isfinite(x);
    for (float x : one.features) varied = varied || std::fabs(x - one.features[0]) > 1e-3f;
    check(finite && varied, "a random scene renders a finite, non-constant image");
  }
}

void test_view_scene() {
  innout::Scene scene;
  innout::SceneStorage storage;
  innout::RenderScene view;
  innout::CameraLabel camera;
  innout::Status status = innout::view_scene(scene, &storage, &view, &camera);
  check(!status.ok() && status.message.find("tensor camera of shape [25]") != std::string::npos,
        "an empty scene is refused: " + status.message);
  // A hand-built scene: planes [3, C=2, H=1, W=2] become channels-last.
  scene.tensors["camera"] = {{25}, std::vector<float>(25, 0.0f)};
  scene.tensors["face.planes"] = {{3, 2, 1, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}};
  scene.tensors["face.hidden.weight"] = {{4, 2}, std::vector<float>(8, 0.0f)};
  scene.tensors["face.hidden.bias"] = {{4}, std::vector<float>(4, 0.0f)};
  scene.tensors["face.output.weight"] = {{4, 4}, std::vector<float>(16, 0.0f)};
  status = innout::view_scene(scene, &storage, &view, &camera);
  check(!status.ok() && status.message.find("face.output.bias") != std::string::npos,
        "a missing tensor is named: " + status.message);
  scene.tensors["face.output.bias"] = {{4}, std::vector<float>(4, 0.0f)};
  status = innout::view_scene(scene, &storage, &view, &camera);
  check(status.ok(), "a complete scene is viewed: " + status.message);
  const std::vector<float> channels_last = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11};
  check(storage.face_planes == channels_last && view.face_planes.channels == 2 &&
            view.face_planes.height == 1 && view.face_planes.width == 2,
        "planes [3, C, H, W] are viewed channels-last");
  check(view.face_decoder.inputs == 2 && view.face_decoder.hidden == 4 &&
            view.face_decoder.outputs == 4 && view.feature_channels() == 3 && !view.has_object(),
        "decoder sizes come from the tensors");
}

void test_orbit_camera() {
  const innout::CameraLabel camera = frontal_camera();
  const float pivot[3] = {0.0f, 0.0f, 0.2f};
  const innout::CameraLabel turned = innout::orbit_camera(camera, 0.5f, pivot);
  const innout::CameraLabel back = innout::orbit_camera(turned, -0.5f, pivot);
  float distance = 0.0f;
  for (int i = 0; i < 3; ++i) {
    const float d = turned.values[i * 4 + 3] - pivot[i];
    distance += d * d;
  }
  check(near(std::sqrt(distance), 2.5f, 1e-5f), "the orbit keeps the distance to the pivot");
  check(near(turned.values[3], 2.5f * std::sin(0.5f), 1e-5f) && near(turned.values[7], 0.0f, 0),
        "the orbit moves the camera about the vertical axis");
  bool same = true;
  for (int i = 0; i < 25; ++i) same = same && near(back.values[i], camera.values[i], 1e-5f);
  check(same, "turning back returns the camera");
  // The optical axis still passes through the pivot.
  float origin[3], direction[3];
  innout::camera_ray(turned, 1, 0, 0, origin, direction);
  const float t = (pivot[2] - origin[2]) / direction[2];
  check(near(origin[0] + t * direction[0], 0.0f, 1e-5f), "the turned camera looks at the pivot");
}

#ifdef INNOUT_TEST_CUDA
// Copies a host array to a new device allocation (freed by the caller).
template <typename T>
T* to_device(const std::vector<T>& host, std::vector<void*>* allocations) {
  void* device = nullptr;
  if (cudaMalloc(&device, host.size() * sizeof(T) + 1) != cudaSuccess) return nullptr;
  cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  allocations->push_back(device);
  return static_cast<T*>(device);
}

void test_cuda_matches_cpu() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: the CUDA render comparison is skipped\n");
    return;
  }
  for (bool with_object : {false, true}) {
    OwnedScene s = random_scene(with_object, 32, 16, 32);
    const innout::CameraLabel camera = frontal_camera();
    const int64_t size = 16, pixels = size * size;
    Image cpu(s.view, size);
    check(render(s.view, camera, &cpu, 4, 2).ok(), "CPU render for the CUDA comparison");
    std::vector<void*> allocations;
    innout::RenderScene device = s.view;
    device.face_planes.data = to_device(s.face_planes, &allocations);
    device.face_decoder = {to_device(s.face_w1, &allocations), to_device(s.face_b1, &allocations),
                           to_device(s.face_w2, &allocations), to_device(s.face_b2, &allocations),
                           s.view.face_decoder.inputs,         s.view.face_decoder.hidden,
                           s.view.face_decoder.outputs};
    if (with_object) {
      device.object_planes.data = to_device(s.object_planes, &allocations);
      device.object_decoder = {
          to_device(s.object_w1, &allocations), to_device(s.object_b1, &allocations),
          to_device(s.object_w2, &allocations), to_device(s.object_b2, &allocations),
          s.view.object_decoder.inputs,         s.view.object_decoder.hidden,
          s.view.object_decoder.outputs};
      device.object_code = to_device(s.code, &allocations);
    }
    Image gpu(s.view, size);
    innout::RenderTarget target = gpu.target;
    target.features = to_device(gpu.features, &allocations);
    target.depth = to_device(gpu.depth, &allocations);
    target.weight_total = to_device(gpu.weight, &allocations);
    target.object_opacity = with_object ? to_device(gpu.opacity, &allocations) : nullptr;
    // 100 rays per launch: several launches, the last one partial.
    const int64_t workspace_floats = innout::render_workspace_floats(s.view, 100);
    float* workspace = to_device(std::vector<float>(workspace_floats), &allocations);
    const innout::Status status =
        innout::cuda::render(device, camera, target, workspace, workspace_floats, {});
    check(status.ok() && cudaDeviceSynchronize() == cudaSuccess, "CUDA render: " + status.message);
    cudaMemcpy(gpu.features.data(), target.features, gpu.features.size() * 4,
               cudaMemcpyDeviceToHost);
    cudaMemcpy(gpu.depth.data(), target.depth, pixels * 4, cudaMemcpyDeviceToHost);
    float worst = 0.0f;
    for (size_t i = 0; i < cpu.features.size(); ++i)
      worst = std::fmax(worst, std::fabs(cpu.features[i] - gpu.features[i]));
    for (int64_t i = 0; i < pixels; ++i)
      worst = std::fmax(worst, std::fabs(cpu.depth[i] - gpu.depth[i]));
    std::printf("CUDA vs CPU render (object %d): max |difference| %.3g\n", with_object, worst);
    check(worst <= 1e-4f, "the CUDA render matches the CPU render within 1e-4");
    for (void* p : allocations) cudaFree(p);
  }
}
#endif

}  // namespace

int main() {
  test_validation();
  test_camera_rays();
  test_decoder();
  test_opaque_constant_field();
  test_thread_and_workspace_invariance();
  test_view_scene();
  test_orbit_camera();
#ifdef INNOUT_TEST_CUDA
  test_cuda_matches_cpu();
#endif
  if (innout_test::failures == 0) std::printf("all render tests passed\n");
  return innout_test::failures == 0 ? 0 : 1;
}
