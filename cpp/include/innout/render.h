// render: the composite raw image of an EG3D tri-plane field and an optional object field, one
// ray at a time (single-source maths shared by the CPU and CUDA backends; the entry points are in
// innout/innout.h).
//
// For each pixel ray, exactly as innout.scene.render_scene / innout.invert.composite does with
// deterministic sampling:
//   1. the ray of the pixel centre from the 25-float camera label (EG3D's ray sampler);
//   2. K coarse depths linspace(ray_start, ray_end, K) (stratified sampling without jitter);
//   3. both fields decoded at o + t d: tri-plane feature -> two-layer MLP (EG3D's OSGDecoder; the
//      object decoder also reads the frame's code and outputs a blend logit);
//   4. the composite march of the coarse samples gives weights, from which N fine depths are drawn
//      (EG3D's importance sampling with uniforms linspace(0, 1, N));
//   5. coarse and fine samples merged in depth order and marched again (composite_march.h).
// Outputs per pixel: the composite features 2F - 1 (the first three are the raw RGB image), the
// depth, the accumulated weight and, with an object, the object's share of the pixel (its
// layer's alpha).
#pragma once

#include "innout/common.h"
#include "innout/composite_march.h"
#include "innout/detail/maths.h"
#include "innout/importance_sample.h"
#include "innout/stratified_sample.h"
#include "innout/triplane_sample.h"

namespace innout {

// A tri-plane, channels-last: element (k, y, x, c) at data[((k * height + y) * width + x) *
// channels + c] (see triplane_sample.h; scene files store [3, C, H, W] and are converted).
struct TriPlaneView {
  const float* data = nullptr;
  int64_t channels = 0, height = 0, width = 0;
};

// A two-layer MLP y = W2 softplus(W1 x + b1) + b2 with row-major weights (W1 [hidden, inputs],
// W2 [outputs, hidden]) and any equalised-learning-rate gains already folded in.
struct DecoderView {
  const float* hidden_weight = nullptr;
  const float* hidden_bias = nullptr;
  const float* output_weight = nullptr;
  const float* output_bias = nullptr;
  int64_t inputs = 0, hidden = 0, outputs = 0;
};

// What is rendered. The face decoder reads the C plane channels and outputs 1 + F values (raw
// density, then F feature logits). The object decoder, when object_planes.data is set, reads
// [plane feature (C'), object_code (code_size)] and outputs 2 + F values (raw density, F feature
// logits, blend logit). Every pointer is host memory for the CPU backend and device memory for
// the CUDA backend.
struct RenderScene {
  TriPlaneView face_planes;
  DecoderView face_decoder;
  TriPlaneView object_planes;
  DecoderView object_decoder;
  const float* object_code = nullptr;
  int64_t object_code_size = 0;
  int64_t coarse_samples = 48;  // K >= 4 when fine_samples > 0 (importance sampling needs it)
  int64_t fine_samples = 48;    // N >= 0
  float ray_start = 2.25f, ray_end = 3.3f, box_warp = 1.0f;
  float sigmoid_pad = 0.001f;  // colour = sigmoid(logit) (1 + 2 pad) - pad

  INNOUT_HD bool has_object() const { return object_planes.data != nullptr; }
  INNOUT_HD int64_t feature_channels() const { return face_decoder.outputs - 1; }
};

// An EG3D camera label: cam2world (4x4, row-major, OpenCV axes) then normalised intrinsics (3x3).
struct CameraLabel {
  float values[25];
};

// Caller-owned outputs for a resolution x resolution image (ray index = row * resolution + col).
struct RenderTarget {
  int64_t resolution = 0;
  float* features = nullptr;        // [F, R, R] composite features 2F - 1 (required)
  float* depth = nullptr;           // [R, R] or nullptr
  float* weight_total = nullptr;    // [R, R] or nullptr: sum of the ray's weights
  float* object_opacity = nullptr;  // [R, R] or nullptr; needs an object
};

// ---- single-source per-ray maths -------------------------------------------------------------

// The ray through the centre of pixel (row, col) of an R x R image (innout.eg3d.camera.pixel_rays).
INNOUT_HD void camera_ray(const CameraLabel& camera, int64_t resolution, int64_t row, int64_t col,
                          float origin[3], float direction[3]) {
  using std::sqrt;
  const float* m = camera.values;
  const float* k = camera.values + 16;
  const float fx = k[0], skew = k[1], cx = k[2], fy = k[4], cy = k[5];
  const float r = static_cast<float>(resolution);
  const float x = static_cast<float>(col) / r + 0.5f / r;
  const float y = static_cast<float>(row) / r + 0.5f / r;
  const float x_cam = (x - cx + cy * skew / fy - skew * y / fy) / fx;
  const float y_cam = (y - cy) / fy;
  float length_squared = 0.0f;
  for (int i = 0; i < 3; ++i) {
    origin[i] = m[i * 4 + 3];
    const float world = m[i * 4 + 0] * x_cam + m[i * 4 + 1] * y_cam + m[i * 4 + 2] + m[i * 4 + 3];
    direction[i] = world - origin[i];
    length_squared += direction[i] * direction[i];
  }
  // torch.nn.functional.normalize: x / max(|x|, 1e-12).
  float length = sqrt(length_squared);
  if (length < 1e-12f) length = 1e-12f;
  for (int i = 0; i < 3; ++i) direction[i] /= length;
}

// y[outputs] = W2 softplus(W1 x + b1) + b2; `hidden` is scratch of decoder.hidden floats.
INNOUT_HD void decoder_forward(const DecoderView& decoder, const float* INNOUT_RESTRICT x,
                               float* INNOUT_RESTRICT hidden, float* INNOUT_RESTRICT y) {
  for (int64_t j = 0; j < decoder.hidden; ++j) {
    const float* INNOUT_RESTRICT w = decoder.hidden_weight + j * decoder.inputs;
    float sum = 0.0f;
    INNOUT_SIMD_SUM(sum)
    for (int64_t i = 0; i < decoder.inputs; ++i) sum += w[i] * x[i];
    hidden[j] = detail::softplus(sum + decoder.hidden_bias[j]).value;
  }
  for (int64_t j = 0; j < decoder.outputs; ++j) {
    const float* INNOUT_RESTRICT w = decoder.output_weight + j * decoder.hidden;
    float sum = 0.0f;
    INNOUT_SIMD_SUM(sum)
    for (int64_t i = 0; i < decoder.hidden; ++i) sum += w[i] * hidden[i];
    y[j] = sum + decoder.output_bias[j];
  }
}

// The mean tri-plane feature [channels] at a world point (triplane_sample.h, one point).
INNOUT_HD void sample_triplane_point(const TriPlaneView& planes, float box_warp, const float* point,
                                     float* feature) {
  TriplaneSampleParams<float> p;
  p.planes = planes.data;
  p.plane_batch = 1;
  p.channels = planes.channels;
  p.height = planes.height;
  p.width = planes.width;
  p.points = point;
  p.batch = 1;
  p.num_points = 1;
  p.box_warp = box_warp;
  p.features = feature;
  triplane_sample_point(p, 0, 0, 0, planes.channels);
}

namespace detail {

// Widths of the decoder buffers of one ray: the widest input, hidden layer and output of the
// scene's decoders.
struct DecoderWidths {
  int64_t input, hidden, output;
};

INNOUT_HD DecoderWidths decoder_widths(const RenderScene& scene) {
  DecoderWidths w{scene.face_planes.channels, scene.face_decoder.hidden,
                  scene.face_decoder.outputs};
  if (scene.has_object()) {
    w.input = larger(w.input, scene.object_planes.channels + scene.object_code_size);
    w.hidden = larger(w.hidden, scene.object_decoder.hidden);
    w.output = larger(w.output, scene.object_decoder.outputs);
  }
  return w;
}

}  // namespace detail

// Floats of per-ray scratch render_ray needs for `scene`.
INNOUT_HD int64_t render_scratch_floats(const RenderScene& scene) {
  const int64_t K = scene.coarse_samples;
  const int64_t N = scene.fine_samples;
  const int64_t S = K + N;
  const int64_t composite_channels = scene.feature_channels() + (scene.has_object() ? 1 : 0);
  // Per sample: depth, density in, density out, blend and both fields' features; for the coarse
  // samples and again for the merged ones.
  const int64_t per_sample = 4 + 2 * composite_channels;
  const detail::DecoderWidths widths = detail::decoder_widths(scene);
  return (K + S) * per_sample                             // coarse and merged samples
         + 2 * (S - 1)                                    // a march's weights and transmittance
         + composite_channels                             // a march's composite output
         + detail::larger(K - 2, 0)                       // importance sampling's cdf
         + 2 * N                                          // fine uniforms and depths
         + widths.input + widths.hidden + widths.output;  // decoder buffers
}

namespace detail {

// Pointers into one ray's scratch for `count` samples.
struct SampleArrays {
  float* depth;
  float* density_in;
  float* features_in;
  float* density_out;
  float* features_out;
  float* blend;
};

INNOUT_HD SampleArrays carve_samples(float*& scratch, int64_t count, int64_t channels) {
  SampleArrays a;
  a.depth = scratch;
  a.density_in = a.depth + count;
  a.density_out = a.density_in + count;
  a.blend = a.density_out + count;
  a.features_in = a.blend + count;
  a.features_out = a.features_in + count * channels;
  scratch = a.features_out + count * channels;
  return a;
}

// Decodes both fields at depth t of the ray into sample slot s of `a`. With an object, the
// composite channel after the F features is 0 for the face and 1 for the object (its share of
// the pixel comes out of the march in that channel).
INNOUT_HD void decode_sample(const RenderScene& scene, const float* origin, const float* direction,
                             float t, const SampleArrays& a, int64_t s, int64_t channels,
                             float* input, float* hidden, float* output) {
  const int64_t F = scene.feature_channels();
  const float pad = scene.sigmoid_pad;
  float point[3];
  for (int i = 0; i < 3; ++i) point[i] = origin[i] + t * direction[i];
  a.depth[s] = t;
  sample_triplane_point(scene.face_planes, scene.box_warp, point, input);
  decoder_forward(scene.face_decoder, input, hidden, output);
  a.density_in[s] = output[0];
  float* face = a.features_in + s * channels;
  for (int64_t c = 0; c < F; ++c)
    face[c] = detail::sigmoid(output[1 + c]) * (1.0f + 2.0f * pad) - pad;
  if (!scene.has_object()) return;
  face[F] = 0.0f;
  sample_triplane_point(scene.object_planes, scene.box_warp, point, input);
  const int64_t C = scene.object_planes.channels;
  for (int64_t i = 0; i < scene.object_code_size; ++i) input[C + i] = scene.object_code[i];
  decoder_forward(scene.object_decoder, input, hidden, output);
  a.density_out[s] = output[0];
  float* object = a.features_out + s * channels;
  for (int64_t c = 0; c < F; ++c)
    object[c] = detail::sigmoid(output[1 + c]) * (1.0f + 2.0f * pad) - pad;
  object[F] = 1.0f;
  a.blend[s] = detail::sigmoid(output[1 + F]);
}

// composite_march over `count` samples of `a` (one ray); writes the ray's depth to `depth`.
INNOUT_HD void march(const RenderScene& scene, const SampleArrays& a, int64_t count,
                     int64_t channels, float* composite, float* weights, float* transmittance,
                     float* depth) {
  CompositeMarchParams<float> p;
  p.num_rays = 1;
  p.num_samples = count;
  p.channels = channels;
  p.depths = a.depth;
  p.density_in = a.density_in;
  p.features_in = a.features_in;
  if (scene.has_object()) {
    p.density_out = a.density_out;
    p.features_out = a.features_out;
    p.blend = a.blend;
  }
  p.composite = composite;
  p.weights = weights;
  p.transmittance = transmittance;
  p.depth = depth;
  composite_march_ray(p, 0);
}

// torch.linspace(0, 1, n)[i] (computed from both ends, as torch does).
INNOUT_HD float linspace01(int64_t i, int64_t n) {
  if (n == 1) return 0.0f;
  const float step = 1.0f / static_cast<float>(n - 1);
  return i < n / 2 ? step * static_cast<float>(i) : 1.0f - step * static_cast<float>(n - 1 - i);
}

}  // namespace detail

// Renders ray `ray` (= row * R + col) of `target` using `scratch` (render_scratch_floats floats).
INNOUT_HD void render_ray(const RenderScene& scene, const CameraLabel& camera,
                          const RenderTarget& target, int64_t ray, float* scratch) {
  const int64_t R = target.resolution;
  const int64_t K = scene.coarse_samples;
  const int64_t N = scene.fine_samples;
  const int64_t S = K + N;
  const int64_t F = scene.feature_channels();
  const int64_t channels = F + (scene.has_object() ? 1 : 0);
  float origin[3], direction[3];
  camera_ray(camera, R, ray / R, ray % R, origin, direction);

  detail::SampleArrays coarse = detail::carve_samples(scratch, K, channels);
  detail::SampleArrays merged = detail::carve_samples(scratch, S, channels);
  float* weights = scratch;
  float* transmittance = weights + (S - 1);
  float* composite = transmittance + (S - 1);
  float* cdf = composite + channels;
  float* uniforms = cdf + detail::larger(K - 2, 0);
  float* fine = uniforms + N;
  const detail::DecoderWidths widths = detail::decoder_widths(scene);
  float* input = fine + N;
  float* hidden = input + widths.input;
  float* output = hidden + widths.hidden;

  // Coarse depths: the stratified sampler without jitter (EG3D's deterministic depths).
  StratifiedSampleParams<float> stratified;
  stratified.num_rays = 1;
  stratified.num_samples = K;
  stratified.near = &scene.ray_start;
  stratified.far = &scene.ray_end;
  stratified.depths = coarse.depth;
  stratified_sample_ray(stratified, 0);
  for (int64_t k = 0; k < K; ++k) {
    detail::decode_sample(scene, origin, direction, coarse.depth[k], coarse, k, channels, input,
                          hidden, output);
  }

  detail::SampleArrays final_samples = coarse;
  int64_t final_count = K;
  if (N > 0) {
    float coarse_depth = 0.0f;
    detail::march(scene, coarse, K, channels, composite, weights, transmittance, &coarse_depth);
    for (int64_t n = 0; n < N; ++n) uniforms[n] = detail::linspace01(n, N);
    ImportanceSampleParams<float> importance;
    importance.num_rays = 1;
    importance.num_samples = K;
    importance.num_importance = N;
    importance.depths = coarse.depth;
    importance.weights = weights;
    importance.uniforms = uniforms;
    importance.cdf = cdf;
    importance.samples = fine;
    importance_sample_ray(importance, 0);
    // The fine depths are non-decreasing for sorted uniforms; sort anyway (insertion sort: they
    // arrive sorted, so this is one pass) so that the merge below is right for any input.
    for (int64_t n = 1; n < N; ++n) {
      const float value = fine[n];
      int64_t m = n - 1;
      while (m >= 0 && fine[m] > value) {
        fine[m + 1] = fine[m];
        --m;
      }
      fine[m + 1] = value;
    }
    // Merge coarse (already decoded: copied) and fine (decoded now) samples by depth. Equal
    // depths are the same point, so their order does not change any value.
    int64_t i = 0, j = 0;
    for (int64_t s = 0; s < S; ++s) {
      if (j >= N || (i < K && coarse.depth[i] <= fine[j])) {
        merged.depth[s] = coarse.depth[i];
        merged.density_in[s] = coarse.density_in[i];
        for (int64_t c = 0; c < channels; ++c)
          merged.features_in[s * channels + c] = coarse.features_in[i * channels + c];
        if (scene.has_object()) {
          merged.density_out[s] = coarse.density_out[i];
          merged.blend[s] = coarse.blend[i];
          for (int64_t c = 0; c < channels; ++c)
            merged.features_out[s * channels + c] = coarse.features_out[i * channels + c];
        }
        ++i;
      } else {
        detail::decode_sample(scene, origin, direction, fine[j], merged, s, channels, input, hidden,
                              output);
        ++j;
      }
    }
    final_samples = merged;
    final_count = S;
  }

  float depth = 0.0f;
  detail::march(scene, final_samples, final_count, channels, composite, weights, transmittance,
                &depth);

  const int64_t pixels = R * R;
  for (int64_t c = 0; c < F; ++c) target.features[c * pixels + ray] = composite[c];
  if (target.depth != nullptr) target.depth[ray] = depth;
  if (target.weight_total != nullptr) {
    float total = 0.0f;
    for (int64_t i = 0; i + 1 < final_count; ++i) total += weights[i];
    target.weight_total[ray] = total;
  }
  if (target.object_opacity != nullptr && scene.has_object()) {
    target.object_opacity[ray] = (composite[F] + 1.0f) / 2.0f;
  }
}

}  // namespace innout
