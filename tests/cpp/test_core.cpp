// C++ tests of the core library without Python: known values, finite differences, validation,
// thread-count determinism. Run by ctest (and by tests/test_cpp_core.py in the pytest run).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "innout/cpu.h"

namespace {

using innout_test::check;
using innout_test::failures;

bool near(double a, double b, double tolerance) { return std::fabs(a - b) <= tolerance; }

std::vector<double> random_vector(size_t n, double lo, double hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Params of shared planes [1, 3, H, W, C] (channels-last) sampled at `points` of one batch item.
template <typename T>
innout::TriplaneSampleParams<T> shared_planes(const T* planes, int64_t channels, int64_t height,
                                              int64_t width, const T* points, int64_t num_points) {
  innout::TriplaneSampleParams<T> p;
  p.planes = planes;
  p.plane_batch = 1;
  p.channels = channels;
  p.height = height;
  p.width = width;
  p.points = points;
  p.batch = 1;
  p.num_points = num_points;
  return p;
}

// Bilinear sampling at a texel centre returns that texel; the mean over the three planes follows.
void triplane_at_texel_centre() {
  const int64_t C = 2, H = 4, W = 5;
  std::vector<double> planes(3 * H * W * C);
  for (size_t i = 0; i < planes.size(); ++i) planes[i] = static_cast<double>(i % 17) - 3.0;
  // Texel (row 1, col 3) of each plane; points in world units with box_warp = 1 (grid = 2 p).
  const double gx = (2.0 * 3 + 1) / W - 1.0;
  const double gy = (2.0 * 1 + 1) / H - 1.0;
  // Only plane 0 (which reads (x, y)) is non-zero, so the mean is that texel divided by 3.
  std::vector<double> only0 = planes;
  for (size_t i = H * W * C; i < only0.size(); ++i) only0[i] = 0.0;
  const double point[3] = {gx / 2, gy / 2, 0.0};
  double features[2] = {0, 0};
  auto p = shared_planes(only0.data(), C, H, W, point, 1);
  p.features = features;
  check(innout::cpu::triplane_sample_forward(p, {}).ok(), "triplane forward status");
  for (int c = 0; c < C; ++c) {
    check(near(features[c], only0[(1 * W + 3) * C + c] / 3.0, 1e-12), "texel centre value / 3");
  }
}

// The EG3D marcher written out plainly, to compare against composite_march without OOD field.
void plain_march(const std::vector<double>& t, const std::vector<double>& raw,
                 const std::vector<double>& f, int64_t K, int64_t C, std::vector<double>& out) {
  double trans = 1.0;
  out.assign(C, 0.0);
  for (int64_t i = 0; i + 1 < K; ++i) {
    const double x = 0.5 * (raw[i] + raw[i + 1]) - 1.0;
    const double sigma = std::log1p(std::exp(x));
    const double alpha = 1.0 - std::exp(-sigma * (t[i + 1] - t[i]));
    for (int64_t c = 0; c < C; ++c)
      out[c] += trans * alpha * 0.5 * (f[i * C + c] + f[(i + 1) * C + c]);
    trans *= 1.0 - alpha + 1e-10;
  }
  for (auto& v : out) v = 2.0 * v - 1.0;
}

struct Ray {
  int64_t K = 7, C = 3;
  std::vector<double> t, raw_in, f_in, raw_out, f_out, blend;
  Ray() {
    t = random_vector(K, 2.0, 3.0, 1);
    std::sort(t.begin(), t.end());
    raw_in = random_vector(K, -3, 6, 2);
    f_in = random_vector(K * C, 0, 1, 3);
    raw_out = random_vector(K, -3, 6, 4);
    f_out = random_vector(K * C, 0, 1, 5);
    blend = random_vector(K, 0, 1, 6);
  }
  innout::CompositeMarchParams<double> params(bool ood) const {
    innout::CompositeMarchParams<double> p;
    p.num_rays = 1;
    p.num_samples = K;
    p.channels = C;
    p.depths = t.data();
    p.density_in = raw_in.data();
    p.features_in = f_in.data();
    if (ood) {
      p.density_out = raw_out.data();
      p.features_out = f_out.data();
      p.blend = blend.data();
    }
    return p;
  }
};

// Forward outputs of one ray, attached to a params struct.
struct MarchOutputs {
  std::vector<double> composite, weights, transmittance;
  double depth = 0;
  explicit MarchOutputs(const Ray& ray)
      : composite(ray.C), weights(ray.K - 1), transmittance(ray.K - 1) {}
  innout::CompositeMarchParams<double> attach(innout::CompositeMarchParams<double> p) {
    p.composite = composite.data();
    p.depth = &depth;
    p.weights = weights.data();
    p.transmittance = transmittance.data();
    return p;
  }
};

// Loss = sum(g_c * composite_c) + g_d * depth: forward value for finite differences.
double composite_loss(const Ray& ray, const std::vector<double>& g) {
  MarchOutputs out(ray);
  innout::cpu::composite_march_forward(out.attach(ray.params(true)), {});
  double loss = g[ray.C] * out.depth;
  for (int64_t c = 0; c < ray.C; ++c) loss += g[c] * out.composite[c];
  return loss;
}

void composite_without_ood_is_eg3d_march() {
  Ray ray;
  MarchOutputs out(ray);
  std::vector<double> expected;
  check(innout::cpu::composite_march_forward(out.attach(ray.params(false)), {}).ok(),
        "composite forward status");
  plain_march(ray.t, ray.raw_in, ray.f_in, ray.K, ray.C, expected);
  for (int64_t c = 0; c < ray.C; ++c) {
    check(near(out.composite[c], expected[c], 1e-12), "march value");
  }
  check(out.depth >= ray.t.front() && out.depth <= ray.t.back(), "depth inside the ray's range");
}

// Central finite differences of every input against the backward pass.
void composite_gradients_match_finite_differences() {
  Ray ray;
  const std::vector<double> g = {0.3, -1.2, 0.7, 0.9};  // C composite grads + depth grad
  MarchOutputs out(ray);
  auto p = out.attach(ray.params(true));
  innout::cpu::composite_march_forward(p, {});
  std::vector<double> gd(ray.K), gri(ray.K), gfi(ray.K * ray.C), gro(ray.K), gfo(ray.K * ray.C),
      gb(ray.K);
  p.grad_composite = g.data();
  p.grad_depth = &g[ray.C];
  p.grad_depths = gd.data();
  p.grad_density_in = gri.data();
  p.grad_features_in = gfi.data();
  p.grad_density_out = gro.data();
  p.grad_features_out = gfo.data();
  p.grad_blend = gb.data();
  check(innout::cpu::composite_march_backward(p, {}).ok(), "composite backward status");
  struct Input {
    std::vector<double>* values;
    std::vector<double>* grads;
    const char* name;
  };
  Ray probe = ray;
  const Input inputs[] = {{&probe.t, &gd, "depths"},
                          {&probe.raw_in, &gri, "density_in"},
                          {&probe.f_in, &gfi, "features_in"},
                          {&probe.raw_out, &gro, "density_out"},
                          {&probe.f_out, &gfo, "features_out"},
                          {&probe.blend, &gb, "blend"}};
  const double h = 1e-6;
  for (const Input& input : inputs) {
    for (size_t i = 0; i < input.values->size(); ++i) {
      const double saved = (*input.values)[i];
      (*input.values)[i] = saved + h;
      const double plus = composite_loss(probe, g);
      (*input.values)[i] = saved - h;
      const double minus = composite_loss(probe, g);
      (*input.values)[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      check(near(numeric, (*input.grads)[i], 1e-6 * (1 + std::fabs(numeric))),
            std::string("finite difference of ") + input.name + "[" + std::to_string(i) + "]");
    }
  }
}

void uniform_weights_give_linear_importance_samples() {
  const int64_t K = 6, N = 5;
  std::vector<double> t = {0, 1, 2, 3, 4, 5}, w(K - 1, 0.25), u = {0.0, 0.25, 0.5, 0.75, 1.0};
  std::vector<double> cdf(K - 2), samples(N);
  innout::ImportanceSampleParams<double> p;
  p.num_rays = 1;
  p.num_samples = K;
  p.num_importance = N;
  p.depths = t.data();
  p.weights = w.data();
  p.uniforms = u.data();
  p.cdf = cdf.data();
  p.samples = samples.data();
  check(innout::cpu::importance_sample(p, {}).ok(), "importance status");
  // Equal weights: K-3 = 3 equal bins between midpoints 0.5 and 3.5; u maps linearly.
  for (int64_t n = 0; n < N; ++n) check(near(samples[n], 0.5 + 3.0 * u[n], 1e-4), "linear cdf");
}

void invalid_parameters_return_status() {
  innout::CompositeMarchParams<float> march;
  march.num_rays = 4;
  march.num_samples = 1;
  march.channels = 3;
  const innout::Status s1 = innout::cpu::composite_march_forward(march, {});
  check(s1.code == innout::StatusCode::kInvalidArgument, "K = 1 rejected");
  check(s1.message.find("at least 2 samples") != std::string::npos, "message names the rule");
  innout::TriplaneSampleParams<float> tri;
  tri.batch = 2;
  tri.num_points = 3;
  tri.plane_batch = 3;
  tri.channels = tri.height = tri.width = 1;
  const innout::Status s2 = innout::cpu::triplane_sample_forward(tri, {});
  check(!s2.ok() && s2.message.find("plane batch") != std::string::npos, "plane batch rejected");
  innout::ImportanceSampleParams<double> imp;
  imp.num_rays = 1;
  imp.num_samples = 3;
  check(!innout::cpu::importance_sample(imp, {}).ok(), "K = 3 rejected by importance_sample");
}

void results_do_not_depend_on_thread_count() {
  const int64_t B = 1, M = 2000, C = 8, H = 16, W = 16;
  std::vector<float> planes(3 * H * W * C), points(B * M * 3), grad(B * M * C);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-0.6f, 0.6f);
  for (auto& x : planes) x = dist(rng);
  for (auto& x : points) x = dist(rng);
  for (auto& x : grad) x = dist(rng);
  std::vector<float> gp1(planes.size()), gp4(planes.size()), gq1(points.size()), gq4(points.size());
  auto p = shared_planes(planes.data(), C, H, W, points.data(), B * M);
  p.grad_features = grad.data();
  p.grad_planes = gp1.data();
  p.grad_points = gq1.data();
  innout::cpu::triplane_sample_backward(p, innout::CpuOptions{1});
  p.grad_planes = gp4.data();
  p.grad_points = gq4.data();
  innout::cpu::triplane_sample_backward(p, innout::CpuOptions{4});
  check(gp1 == gp4 && gq1 == gq4, "bitwise equal gradients with 1 and 4 threads");
}

// The CUDA backend computes one channel per thread (c_end = c_begin + 1): that path must give the
// same bits as the CPU's whole-row path.
void single_channel_path_equals_row_path() {
  const int64_t C = 5, H = 6, W = 7, M = 40;
  std::vector<float> planes(3 * H * W * C), points(M * 3), row(M * C), single(M * C);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-0.6f, 0.6f);
  for (auto& x : planes) x = dist(rng);
  for (auto& x : points) x = dist(rng);
  auto p = shared_planes(planes.data(), C, H, W, points.data(), M);
  p.features = row.data();
  for (int64_t m = 0; m < M; ++m) innout::triplane_sample_point(p, 0, m, 0, C);
  p.features = single.data();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t c = 0; c < C; ++c) innout::triplane_sample_point(p, 0, m, c, c + 1);
  }
  check(row == single, "one-channel and whole-row tri-plane sampling agree bitwise");
}

}  // namespace

int main() {
  triplane_at_texel_centre();
  composite_without_ood_is_eg3d_march();
  composite_gradients_match_finite_differences();
  uniform_weights_give_linear_importance_samples();
  invalid_parameters_return_status();
  results_do_not_depend_on_thread_count();
  single_channel_path_equals_row_path();
  std::printf("%s (%d failures)\n", failures == 0 ? "all C++ core tests passed" : "FAILED",
              failures);
  return failures == 0 ? 0 : 1;
}
