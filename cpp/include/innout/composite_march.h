// composite_march: volume rendering of two radiance fields sampled at the same depths, blended per
// sample (In-N-Out, METHOD.md section 3.1). Without the second field it is EG3D's MipRayMarcher2.
//
// On K sorted depths t_0..t_{K-1} of a ray there are K-1 intervals i with midpoint values
//   delta_i = t_{i+1} - t_i,  m_i = (t_i + t_{i+1}) / 2,  x_mid = (x_i + x_{i+1}) / 2 for every input x
//   alpha^F_i = 1 - exp(-softplus(raw^F_mid - 1) * delta_i)       F in {in (InD), out (OOD)}
//   a^O_i = b_i alpha^O_i,   a^I_i = (1 - b_i) alpha^I_i           (b = blend weight)
//   T_0 = 1,  T_{i+1} = T_i [(1 - a^O_i)(1 - a^I_i) + 1e-10]
//   W_i = T_i (a^O_i + a^I_i)
//   F = 2 sum_i T_i (a^O_i c^O_i + a^I_i c^I_i) - 1
//   depth = clamp(nan_to_inf(sum_i W_i m_i / sum_i W_i), t_0, t_{K-1})
// The 1e-10 is EG3D's: it keeps T from reaching exactly zero, and the pretrained weights were trained
// with it. With b = 0 every formula reduces to EG3D's marcher exactly.
//
// Backward is a reverse scan: with v_i = dL/d(contribution of interval i) and
//   U_{K-2} = 0,  U_{i-1} = v_i + s_i U_i  (s_i the transmittance factor of interval i),
// dL/ds_i = T_i U_i. No cumulative product is ever divided, so fully opaque intervals (s = 1e-10)
// and transparent ones both get exact gradients.
#pragma once

#include "innout/common.h"

namespace innout {

template <typename T>
struct CompositeMarchParams {
  int64_t num_rays = 0;            // B * R
  int64_t num_samples = 0;         // K >= 2
  int64_t channels = 0;            // C
  const T* depths = nullptr;       // [num_rays, K], sorted ascending along each ray
  const T* density_in = nullptr;   // [num_rays, K] raw InD density (before softplus(. - 1))
  const T* features_in = nullptr;  // [num_rays, K, C] InD features in [0, 1]
  const T* density_out = nullptr;  // [num_rays, K] raw OOD density; nullptr = no OOD field
  const T* features_out = nullptr; // [num_rays, K, C]; nullptr iff density_out is nullptr
  const T* blend = nullptr;        // [num_rays, K] OOD blend weight; nullptr iff no OOD field

  // Forward outputs.
  T* composite = nullptr;          // [num_rays, C] 2 F - 1
  T* depth = nullptr;              // [num_rays]
  T* weights = nullptr;            // [num_rays, K-1] W_i
  T* transmittance = nullptr;      // [num_rays, K-1] T_i, saved for the backward scan

  // Backward inputs (grad_depth / grad_weights may be nullptr when they are zero).
  const T* grad_composite = nullptr;  // [num_rays, C]
  const T* grad_depth = nullptr;      // [num_rays]
  const T* grad_weights = nullptr;    // [num_rays, K-1]
  // Backward outputs; each may be nullptr when not needed. Overwritten, not accumulated.
  T* grad_depths = nullptr;        // [num_rays, K]
  T* grad_density_in = nullptr;    // [num_rays, K]
  T* grad_features_in = nullptr;   // [num_rays, K, C]
  T* grad_density_out = nullptr;   // [num_rays, K]
  T* grad_features_out = nullptr;  // [num_rays, K, C]
  T* grad_blend = nullptr;         // [num_rays, K]
};

// EG3D's floor on each interval's transmittance factor.
constexpr double kTransmittanceFloor = 1e-10;

// Opacity of one interval from the two raw endpoint densities.
template <typename T>
INNOUT_HD T interval_alpha(T raw_a, T raw_b, T delta) {
  using std::exp;
  const T sigma = softplus((raw_a + raw_b) / T(2) - T(1));
  return T(1) - exp(-sigma * delta);
}

// Everything about interval i of a ray that does not depend on the channels.
template <typename T>
struct IntervalState {
  T delta;       // t_{i+1} - t_i
  T mid_depth;   // m_i
  T alpha_in;    // alpha^I
  T alpha_out;   // alpha^O (0 without OOD field)
  T blend;       // b (0 without OOD field)
  T a_in;        // (1 - b) alpha^I
  T a_out;       // b alpha^O
  T factor;      // (1 - a^O)(1 - a^I) + 1e-10
};

template <typename T>
INNOUT_HD IntervalState<T> interval_state(const CompositeMarchParams<T>& p, int64_t ray, int64_t i) {
  const int64_t k = ray * p.num_samples + i;
  IntervalState<T> s;
  s.delta = p.depths[k + 1] - p.depths[k];
  s.mid_depth = (p.depths[k] + p.depths[k + 1]) / T(2);
  s.alpha_in = interval_alpha(p.density_in[k], p.density_in[k + 1], s.delta);
  if (p.density_out != nullptr) {
    s.alpha_out = interval_alpha(p.density_out[k], p.density_out[k + 1], s.delta);
    s.blend = (p.blend[k] + p.blend[k + 1]) / T(2);
  } else {
    s.alpha_out = T(0);
    s.blend = T(0);
  }
  s.a_out = s.blend * s.alpha_out;
  s.a_in = (T(1) - s.blend) * s.alpha_in;
  s.factor = (T(1) - s.a_out) * (T(1) - s.a_in) + T(kTransmittanceFloor);
  return s;
}

// Depth of a ray from its weights: the weighted mean of midpoint depths, NaN (no weight) mapped to
// +inf and clamped to [t_0, t_{K-1}]. Returns the clamped depth; `clamped` tells which bound was
// taken (0 none, -1 lower, +1 upper) because the gradient then flows to that bound instead.
template <typename T>
INNOUT_HD T ray_depth(const CompositeMarchParams<T>& p, const T* weights, int64_t ray, T& weight_sum,
                      T& unclamped, int& clamped) {
  const T* t = p.depths + ray * p.num_samples;
  T numerator = T(0);
  weight_sum = T(0);
  for (int64_t i = 0; i + 1 < p.num_samples; ++i) {
    numerator += weights[i] * ((t[i] + t[i + 1]) / T(2));
    weight_sum += weights[i];
  }
  unclamped = numerator / weight_sum;
  const T lower = t[0];
  const T upper = t[p.num_samples - 1];
  // NaN (0 / 0) compares false everywhere: it is treated as +inf, as EG3D's nan_to_num(inf) does.
  if (unclamped != unclamped || unclamped > upper) {
    clamped = 1;
    return upper;
  }
  if (unclamped < lower) {
    clamped = -1;
    return lower;
  }
  clamped = 0;
  return unclamped;
}

template <typename T>
INNOUT_HD void composite_march_ray(const CompositeMarchParams<T>& p, int64_t ray) {
  const int64_t K = p.num_samples;
  const int64_t C = p.channels;
  T* out = p.composite + ray * C;
  T* weights = p.weights + ray * (K - 1);
  T* transmittance = p.transmittance + ray * (K - 1);
  const T* f_in = p.features_in + ray * K * C;
  const T* f_out = p.features_out != nullptr ? p.features_out + ray * K * C : nullptr;
  for (int64_t c = 0; c < C; ++c) out[c] = T(0);
  T trans = T(1);
  for (int64_t i = 0; i + 1 < K; ++i) {
    const IntervalState<T> s = interval_state(p, ray, i);
    transmittance[i] = trans;
    weights[i] = trans * (s.a_out + s.a_in);
    const T w_in = trans * s.a_in / T(2);  // the 1/2 of the midpoint colour folded in
    const T* ci = f_in + i * C;
    for (int64_t c = 0; c < C; ++c) out[c] += w_in * (ci[c] + ci[c + C]);
    if (f_out != nullptr) {
      const T w_out = trans * s.a_out / T(2);
      const T* co = f_out + i * C;
      for (int64_t c = 0; c < C; ++c) out[c] += w_out * (co[c] + co[c + C]);
    }
    trans *= s.factor;
  }
  for (int64_t c = 0; c < C; ++c) out[c] = T(2) * out[c] - T(1);
  T weight_sum, unclamped;
  int clamped;
  p.depth[ray] = ray_depth(p, weights, ray, weight_sum, unclamped, clamped);
}

// Backward of one ray. Needs the forward's weights and transmittance (p.weights, p.transmittance).
template <typename T>
INNOUT_HD void composite_march_ray_backward(const CompositeMarchParams<T>& p, int64_t ray) {
  using std::exp;
  const int64_t K = p.num_samples;
  const int64_t C = p.channels;
  const T* weights = p.weights + ray * (K - 1);
  const T* transmittance = p.transmittance + ray * (K - 1);
  const T* grad_out = p.grad_composite + ray * C;
  const T* f_in = p.features_in + ray * K * C;
  const T* f_out = p.features_out != nullptr ? p.features_out + ray * K * C : nullptr;
  const int64_t base = ray * K;

  // Depth: d depth / d W_i = (m_i - depth) / sum W when the weighted mean was not clamped;
  // otherwise the gradient goes to the bound that was taken.
  T grad_depth = p.grad_depth != nullptr ? p.grad_depth[ray] : T(0);
  T weight_sum, unclamped;
  int clamped;
  ray_depth(p, weights, ray, weight_sum, unclamped, clamped);
  const T grad_depth_mean = clamped == 0 ? grad_depth : T(0);

  // Zero the per-sample outputs first: each interval adds to both of its endpoints.
  if (p.grad_depths != nullptr)
    for (int64_t k = 0; k < K; ++k) p.grad_depths[base + k] = T(0);
  if (p.grad_density_in != nullptr)
    for (int64_t k = 0; k < K; ++k) p.grad_density_in[base + k] = T(0);
  if (p.grad_density_out != nullptr)
    for (int64_t k = 0; k < K; ++k) p.grad_density_out[base + k] = T(0);
  if (p.grad_blend != nullptr)
    for (int64_t k = 0; k < K; ++k) p.grad_blend[base + k] = T(0);
  T* g_f_in = p.grad_features_in != nullptr ? p.grad_features_in + ray * K * C : nullptr;
  T* g_f_out = p.grad_features_out != nullptr ? p.grad_features_out + ray * K * C : nullptr;
  if (g_f_in != nullptr)
    for (int64_t k = 0; k < K * C; ++k) g_f_in[k] = T(0);
  if (g_f_out != nullptr)
    for (int64_t k = 0; k < K * C; ++k) g_f_out[k] = T(0);
  if (p.grad_depths != nullptr && clamped != 0) {
    p.grad_depths[base + (clamped > 0 ? K - 1 : 0)] += grad_depth;
  }

  T suffix = T(0);  // U_i: gradient of the loss with respect to T_{i+1} divided by nothing
  for (int64_t i = K - 2; i >= 0; --i) {
    const IntervalState<T> s = interval_state(p, ray, i);
    const T trans = transmittance[i];
    const T* ci = f_in + i * C;
    const T* co = f_out != nullptr ? f_out + i * C : nullptr;
    // dot products of the upstream gradient (x2 for F -> 2F - 1) with the midpoint colours
    T dot_in = T(0);
    for (int64_t c = 0; c < C; ++c) dot_in += grad_out[c] * (ci[c] + ci[c + C]);
    T dot_out = T(0);
    if (co != nullptr)
      for (int64_t c = 0; c < C; ++c) dot_out += grad_out[c] * (co[c] + co[c + C]);
    // (2 g) . (c_i + c_{i+1}) / 2 = g . (c_i + c_{i+1})
    T grad_w = p.grad_weights != nullptr ? p.grad_weights[ray * (K - 1) + i] : T(0);
    if (grad_depth_mean != T(0)) grad_w += grad_depth_mean * (s.mid_depth - unclamped) / weight_sum;
    const T value = s.a_in * dot_in + s.a_out * dot_out + grad_w * (s.a_in + s.a_out);
    const T grad_factor = trans * suffix;
    const T grad_a_in = trans * (dot_in + grad_w) - grad_factor * (T(1) - s.a_out);
    const T grad_a_out = trans * (dot_out + grad_w) - grad_factor * (T(1) - s.a_in);
    suffix = value + s.factor * suffix;

    // colours: d F / d c_mid = T a (times 2 for 2F - 1, times 1/2 for the midpoint)
    if (g_f_in != nullptr) {
      const T w = trans * s.a_in;
      T* g0 = g_f_in + i * C;
      for (int64_t c = 0; c < C; ++c) {
        g0[c] += w * grad_out[c];
        g0[c + C] += w * grad_out[c];
      }
    }
    if (g_f_out != nullptr) {
      const T w = trans * s.a_out;
      T* g0 = g_f_out + i * C;
      for (int64_t c = 0; c < C; ++c) {
        g0[c] += w * grad_out[c];
        g0[c + C] += w * grad_out[c];
      }
    }
    // blend and opacities
    const T grad_alpha_in = grad_a_in * (T(1) - s.blend);
    const T grad_alpha_out = grad_a_out * s.blend;
    if (p.grad_blend != nullptr) {
      const T g = (grad_a_out * s.alpha_out - grad_a_in * s.alpha_in) / T(2);
      p.grad_blend[base + i] += g;
      p.grad_blend[base + i + 1] += g;
    }
    // alpha = 1 - exp(-sigma delta): d alpha / d sigma = delta (1 - alpha), d alpha / d delta =
    // sigma (1 - alpha); sigma = softplus(raw_mid - 1): d sigma / d raw_mid = sigmoid(raw_mid - 1).
    T grad_delta = T(0);
    {
      const T raw_mid = (p.density_in[base + i] + p.density_in[base + i + 1]) / T(2);
      const T sigma = softplus(raw_mid - T(1));
      const T decay = exp(-sigma * s.delta);
      grad_delta += grad_alpha_in * sigma * decay;
      if (p.grad_density_in != nullptr) {
        const T g = grad_alpha_in * s.delta * decay * sigmoid(raw_mid - T(1)) / T(2);
        p.grad_density_in[base + i] += g;
        p.grad_density_in[base + i + 1] += g;
      }
    }
    if (p.density_out != nullptr) {
      const T raw_mid = (p.density_out[base + i] + p.density_out[base + i + 1]) / T(2);
      const T sigma = softplus(raw_mid - T(1));
      const T decay = exp(-sigma * s.delta);
      grad_delta += grad_alpha_out * sigma * decay;
      if (p.grad_density_out != nullptr) {
        const T g = grad_alpha_out * s.delta * decay * sigmoid(raw_mid - T(1)) / T(2);
        p.grad_density_out[base + i] += g;
        p.grad_density_out[base + i + 1] += g;
      }
    }
    if (p.grad_depths != nullptr) {
      const T grad_mid = grad_depth_mean != T(0)
                             ? grad_depth_mean * trans * (s.a_in + s.a_out) / weight_sum
                             : T(0);
      p.grad_depths[base + i] += grad_mid / T(2) - grad_delta;
      p.grad_depths[base + i + 1] += grad_mid / T(2) + grad_delta;
    }
  }
}

}  // namespace innout
