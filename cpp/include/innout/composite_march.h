// composite_march: volume rendering of two radiance fields sampled at the same depths, blended per
// sample (In-N-Out, docs/method.md section 3.1). Without the second field it is EG3D's
// MipRayMarcher2.
//
// On K sorted depths t_0..t_{K-1} of a ray there are K-1 intervals i with midpoint values
//   delta_i = t_{i+1} - t_i,  m_i = (t_i + t_{i+1}) / 2,  x_mid = (x_i + x_{i+1}) / 2 for every input x
//   alpha^F_i = 1 - exp(-softplus(raw^F_mid - 1) * delta_i)       F in {in (InD), out (OOD)}
//   a^O_i = b_i alpha^O_i,   a^I_i = (1 - b_i) alpha^I_i           (b = blend weight)
//   T_0 = 1,  T_{i+1} = T_i [(1 - a^O_i)(1 - a^I_i) + 1e-10]
//   W_i = T_i (a^O_i + a^I_i)
//   F = 2 sum_i T_i (a^O_i c^O_i + a^I_i c^I_i) - 1
//   depth = clamp(nan_to_inf(sum_i W_i m_i / sum_i W_i), t_0, t_{K-1})
// The 1e-10 is EG3D's: it keeps T from reaching exactly zero, and the pretrained weights were
// trained with it. With b = 0 every formula reduces to EG3D's marcher exactly.
//
// Backward is a reverse scan: with v_i = dL/d(contribution of interval i) and
//   U_{K-2} = 0,  U_{i-1} = v_i + s_i U_i  (s_i the transmittance factor of interval i),
// dL/ds_i = T_i U_i. No cumulative product is ever divided, so fully opaque intervals (s = 1e-10)
// and transparent ones both get exact gradients.
#pragma once

#include <limits>

#include "innout/common.h"
#include "innout/detail/maths.h"

namespace innout {

template <typename T>
struct CompositeMarchParams {
  int64_t num_rays = 0;             // B * R
  int64_t num_samples = 0;          // K >= 2
  int64_t channels = 0;             // C
  const T* depths = nullptr;        // [num_rays, K], sorted ascending along each ray
  const T* density_in = nullptr;    // [num_rays, K] raw InD density (before softplus(. - 1))
  const T* features_in = nullptr;   // [num_rays, K, C] InD features in [0, 1]
  const T* density_out = nullptr;   // [num_rays, K] raw OOD density; nullptr = no OOD field
  const T* features_out = nullptr;  // [num_rays, K, C]; nullptr iff density_out is nullptr
  const T* blend = nullptr;         // [num_rays, K] OOD blend weight in [0, 1] (precondition,
                                    // see validate.h); nullptr iff no OOD field

  // Forward outputs.
  T* composite = nullptr;      // [num_rays, C] 2 F - 1
  T* depth = nullptr;          // [num_rays]
  T* weights = nullptr;        // [num_rays, K-1] W_i
  T* transmittance = nullptr;  // [num_rays, K-1] T_i, saved for the backward scan
  // Optional [num_rays, K-1, 4] record of (sigma^I, slope^I, sigma^O, slope^O) per interval:
  // written by the forward when non-null, read by the backward when non-null, which then needs one
  // exp per field and interval instead of three transcendental calls. nullptr = recompute.
  T* interval_record = nullptr;

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

// Opacity of one interval of one field, from the raw densities at its two ends:
//   x = (raw_a + raw_b) / 2 - 1,  sigma = softplus(x),  decay = exp(-sigma delta),  alpha = 1 - decay.
// slope = d sigma / d raw_mid = sigmoid(x) comes from the same exp(x) - three transcendental calls
// per field and interval, shared by the forward and the backward. Above softplus' threshold (20)
// sigma = x and the slope is exactly 1, as in torch.nn.functional.softplus and its gradient.
template <typename T>
struct IntervalOpacity {
  T sigma;
  T decay;
  T alpha;
  T slope;
};

template <typename T>
INNOUT_HD IntervalOpacity<T> interval_opacity(T raw_a, T raw_b, T delta) {
  using std::exp;
  const T x = (raw_a + raw_b) / T(2) - T(1);
  const detail::Softplus<T> softplus = detail::softplus(x);
  IntervalOpacity<T> o;
  o.sigma = softplus.value;
  o.slope = softplus.slope;
  o.decay = exp(-o.sigma * delta);
  o.alpha = T(1) - o.decay;
  return o;
}

// The same from a recorded sigma and slope (bitwise equal to interval_opacity's result).
template <typename T>
INNOUT_HD IntervalOpacity<T> recorded_opacity(T sigma, T slope, T delta) {
  using std::exp;
  IntervalOpacity<T> o;
  o.sigma = sigma;
  o.slope = slope;
  o.decay = exp(-sigma * delta);
  o.alpha = T(1) - o.decay;
  return o;
}

// Everything about interval i of a ray that does not depend on the channels.
template <typename T>
struct IntervalState {
  T delta;                 // t_{i+1} - t_i
  T mid_depth;             // m_i
  IntervalOpacity<T> in;   // InD field
  IntervalOpacity<T> out;  // OOD field (alpha 0 without it)
  T blend;                 // b (0 without OOD field)
  T a_in;                  // (1 - b) alpha^I
  T a_out;                 // b alpha^O
  T factor;                // (1 - a^O)(1 - a^I) + 1e-10
};

// State of interval i of a ray; from_record reads sigma and slope from p.interval_record.
template <typename T>
INNOUT_HD IntervalState<T> interval_state(const CompositeMarchParams<T>& p, int64_t ray, int64_t i,
                                          bool from_record) {
  const int64_t k = ray * p.num_samples + i;
  const T* record = from_record ? p.interval_record + (ray * (p.num_samples - 1) + i) * 4 : nullptr;
  IntervalState<T> s;
  s.delta = p.depths[k + 1] - p.depths[k];
  s.mid_depth = (p.depths[k] + p.depths[k + 1]) / T(2);
  s.in = record != nullptr ? recorded_opacity(record[0], record[1], s.delta)
                           : interval_opacity(p.density_in[k], p.density_in[k + 1], s.delta);
  if (p.density_out != nullptr) {
    s.out = record != nullptr ? recorded_opacity(record[2], record[3], s.delta)
                              : interval_opacity(p.density_out[k], p.density_out[k + 1], s.delta);
    s.blend = (p.blend[k] + p.blend[k + 1]) / T(2);
  } else {
    s.out = IntervalOpacity<T>{T(0), T(1), T(0), T(0)};
    s.blend = T(0);
  }
  s.a_out = s.blend * s.out.alpha;
  s.a_in = (T(1) - s.blend) * s.in.alpha;
  s.factor = (T(1) - s.a_out) * (T(1) - s.a_in) + T(kTransmittanceFloor);
  return s;
}

// ray_depth where the weights do not sum to a positive number, or the mean or a bound is NaN or out
// of [t_0, t_{K-1}]: the rare cases, out of line.
template <typename T>
INNOUT_HD_COLD T ray_depth_clamped(T weight_sum, T lower, T upper, T& unclamped, int& clamped) {
  if (!(weight_sum > T(0))) unclamped = std::numeric_limits<T>::infinity();
  if (unclamped != unclamped || lower != lower || upper != upper) {
    clamped = 2;
    return std::numeric_limits<T>::quiet_NaN();
  }
  T depth = unclamped;
  clamped = 0;
  if (depth < lower) {
    clamped = -1;
    depth = lower;
  }
  if (depth > upper) {
    clamped = 1;
    depth = upper;
  }
  return depth;
}

// Depth of a ray from its weights: the weighted mean of midpoint depths - +inf where the weights do
// not sum to a positive number (EG3D's nan_to_num(inf) of 0 / 0) - clamped to [t_0, t_{K-1}] as
// torch.clamp does: max with t_0 first, then min with t_{K-1} (which wins if t_0 > t_{K-1}), and
// NaN if the mean or a bound is NaN. Returns the clamped depth; `clamped` tells which bound was
// taken (0 none, -1 lower, +1 upper) because the gradient then flows to that bound instead; 2 for
// a NaN depth, through which (as through torch.clamp's NaN) no gradient flows.
template <typename T>
INNOUT_HD T ray_depth(const CompositeMarchParams<T>& p, const T* weights, int64_t ray,
                      T& weight_sum, T& unclamped, int& clamped) {
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
  // The usual ray: some weight, and a mean within its bounds (all three not NaN).
  if (weight_sum > T(0) && unclamped >= lower && unclamped <= upper) {
    clamped = 0;
    return unclamped;
  }
  return ray_depth_clamped(weight_sum, lower, upper, unclamped, clamped);
}

// The composite of one ray summed interval by interval, as the formulas (and the reference) write
// it: F = sum_i T_i (a^O_i m^O_i + a^I_i m^I_i) with midpoint colours m. composite_march_ray sums
// per sample instead (each colour times (w_{k-1} + w_k) / 2), which is the same number for finite
// inputs; with an infinite weight or colour the two orders give different infinities or NaN (inf
// - inf, 0 * inf), so a ray whose composite is not finite is summed again this way.
template <typename T>
INNOUT_HD_COLD void composite_march_ray_by_interval(const CompositeMarchParams<T>& p, int64_t ray) {
  const int64_t K = p.num_samples;
  const int64_t C = p.channels;
  T* out = p.composite + ray * C;
  const T* f_in = p.features_in + ray * K * C;
  const T* f_out = p.features_out != nullptr ? p.features_out + ray * K * C : nullptr;
  for (int64_t c = 0; c < C; ++c) out[c] = T(0);
  T trans = T(1);
  for (int64_t i = 0; i + 1 < K; ++i) {
    const IntervalState<T> s = interval_state(p, ray, i, /*from_record=*/false);
    const T* in_a = f_in + i * C;
    if (f_out == nullptr) {
      // EG3D's marcher: the weight W_i = T_i alpha_i times the midpoint colour.
      const T w = trans * s.a_in;
      for (int64_t c = 0; c < C; ++c) out[c] += w * ((in_a[c] + in_a[c + C]) / T(2));
    } else {
      const T* out_a = f_out + i * C;
      for (int64_t c = 0; c < C; ++c) {
        out[c] += trans * (s.a_out * ((out_a[c] + out_a[c + C]) / T(2)) +
                           s.a_in * ((in_a[c] + in_a[c + C]) / T(2)));
      }
    }
    trans *= s.factor;
  }
  for (int64_t c = 0; c < C; ++c) out[c] = T(2) * out[c] - T(1);
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
  // The midpoint colour of interval i is (c_i + c_{i+1}) / 2, so sample k's colour enters F with
  // coefficient (w_{k-1} + w_k) / 2: each feature row is read and multiplied once, not twice.
  T trans = T(1);
  T previous_in = T(0);   // T_{i-1} a^I_{i-1}
  T previous_out = T(0);  // T_{i-1} a^O_{i-1}
  for (int64_t i = 0; i + 1 < K; ++i) {
    const IntervalState<T> s = interval_state(p, ray, i, /*from_record=*/false);
    if (p.interval_record != nullptr) {
      T* record = p.interval_record + (ray * (K - 1) + i) * 4;
      record[0] = s.in.sigma;
      record[1] = s.in.slope;
      record[2] = s.out.sigma;
      record[3] = s.out.slope;
    }
    transmittance[i] = trans;
    const T w_in = trans * s.a_in;
    const T w_out = trans * s.a_out;
    weights[i] = trans * (s.a_out + s.a_in);
    detail::add_scaled(out, f_in + i * C, (previous_in + w_in) / T(2), C);
    if (f_out != nullptr) detail::add_scaled(out, f_out + i * C, (previous_out + w_out) / T(2), C);
    previous_in = w_in;
    previous_out = w_out;
    trans *= s.factor;
  }
  detail::add_scaled(out, f_in + (K - 1) * C, previous_in / T(2), C);
  if (f_out != nullptr) detail::add_scaled(out, f_out + (K - 1) * C, previous_out / T(2), C);
  T probe = T(0);  // sum of x - x over the channels: 0, or NaN if one of them is not finite
  INNOUT_SIMD_SUM(probe)
  for (int64_t c = 0; c < C; ++c) {
    out[c] = T(2) * out[c] - T(1);
    probe += out[c] - out[c];
  }
  // Rare (a non-finite input): the formulas' order decides which infinity or NaN comes out.
  if (probe != probe) composite_march_ray_by_interval(p, ray);
  T weight_sum, unclamped;
  int clamped;
  p.depth[ray] = ray_depth(p, weights, ray, weight_sum, unclamped, clamped);
}

// Writes grad_features[k] = (w_{k-1} + w_k) g for one sample: every gradient row is written once.
template <typename T>
INNOUT_HD void write_feature_grad(T* INNOUT_RESTRICT grad_row, const T* INNOUT_RESTRICT grad_out,
                                  T coefficient, int64_t C) {
  for (int64_t c = 0; c < C; ++c) grad_row[c] = coefficient * grad_out[c];
}

// Backward of one ray. Needs the forward's weights and transmittance (p.weights, p.transmittance),
// and uses its interval record when p.interval_record is set.
template <typename T>
INNOUT_HD void composite_march_ray_backward(const CompositeMarchParams<T>& p, int64_t ray) {
  const int64_t K = p.num_samples;
  const int64_t C = p.channels;
  const T* weights = p.weights + ray * (K - 1);
  const T* transmittance = p.transmittance + ray * (K - 1);
  const T* grad_out = p.grad_composite + ray * C;
  const T* f_in = p.features_in + ray * K * C;
  const T* f_out = p.features_out != nullptr ? p.features_out + ray * K * C : nullptr;
  T* g_f_in = p.grad_features_in != nullptr ? p.grad_features_in + ray * K * C : nullptr;
  T* g_f_out = p.grad_features_out != nullptr ? p.grad_features_out + ray * K * C : nullptr;
  const int64_t base = ray * K;

  // Depth: d depth / d W_i = (m_i - depth) / sum W when the weighted mean was not clamped;
  // otherwise the gradient goes to the bound that was taken.
  const T grad_depth = p.grad_depth != nullptr ? p.grad_depth[ray] : T(0);
  T weight_sum, unclamped;
  int clamped;
  ray_depth(p, weights, ray, weight_sum, unclamped, clamped);
  const T grad_depth_mean = clamped == 0 ? grad_depth : T(0);

  // Per-sample outputs receive from both neighbouring intervals. The scan runs from the last
  // interval down, so sample i+1 is complete after interval i: it is stored then (no zeroing pass,
  // no read-modify-write of the large feature gradients).
  T next_depths = T(0), next_density_in = T(0), next_density_out = T(0), next_blend = T(0);
  T next_w_in = T(0), next_w_out = T(0);  // T_{i+1} a_{i+1} of the interval after i
  if (p.grad_depths != nullptr && clamped == 1) next_depths = grad_depth;
  // g . c_k for the sample after the interval (the dot products are shared by two intervals).
  T next_dot_in = detail::dot(grad_out, f_in + (K - 1) * C, C);
  T next_dot_out = f_out != nullptr ? detail::dot(grad_out, f_out + (K - 1) * C, C) : T(0);

  // U_i = sum_{j>i} (prod_{i<k<j} s_k) v_j, so that dL/ds_i = T_i U_i (no division anywhere).
  T suffix = T(0);
  for (int64_t i = K - 2; i >= 0; --i) {
    const IntervalState<T> s = interval_state(p, ray, i, p.interval_record != nullptr);
    const T trans = transmittance[i];
    const T this_dot_in = detail::dot(grad_out, f_in + i * C, C);
    const T this_dot_out = f_out != nullptr ? detail::dot(grad_out, f_out + i * C, C) : T(0);
    // (2 g) . (c_i + c_{i+1}) / 2 = g . c_i + g . c_{i+1}
    const T dot_in = this_dot_in + next_dot_in;
    const T dot_out = this_dot_out + next_dot_out;
    T grad_w = p.grad_weights != nullptr ? p.grad_weights[ray * (K - 1) + i] : T(0);
    if (grad_depth_mean != T(0)) grad_w += grad_depth_mean * (s.mid_depth - unclamped) / weight_sum;
    const T value = s.a_in * dot_in + s.a_out * dot_out + grad_w * (s.a_in + s.a_out);
    const T grad_factor = trans * suffix;
    const T grad_a_in = trans * (dot_in + grad_w) - grad_factor * (T(1) - s.a_out);
    const T grad_a_out = trans * (dot_out + grad_w) - grad_factor * (T(1) - s.a_in);
    suffix = value + s.factor * suffix;

    // Colours: d(2F - 1) / d c_k = (2/2) (T_{k-1} a_{k-1} + T_k a_k).
    const T w_in = trans * s.a_in;
    const T w_out = trans * s.a_out;
    if (g_f_in != nullptr) write_feature_grad(g_f_in + (i + 1) * C, grad_out, w_in + next_w_in, C);
    if (g_f_out != nullptr) {
      write_feature_grad(g_f_out + (i + 1) * C, grad_out, w_out + next_w_out, C);
    }
    next_w_in = w_in;
    next_w_out = w_out;
    next_dot_in = this_dot_in;
    next_dot_out = this_dot_out;

    // Blend and opacities.
    const T grad_alpha_in = grad_a_in * (T(1) - s.blend);
    const T grad_alpha_out = grad_a_out * s.blend;
    const T grad_blend_mid = (grad_a_out * s.out.alpha - grad_a_in * s.in.alpha) / T(2);
    if (p.grad_blend != nullptr) {
      p.grad_blend[base + i + 1] = next_blend + grad_blend_mid;
      next_blend = grad_blend_mid;
    }
    // alpha = 1 - exp(-sigma delta): d alpha / d sigma = delta (1 - alpha), d alpha / d delta =
    // sigma (1 - alpha); sigma = softplus(raw_mid - 1): d sigma / d raw_mid = sigmoid(raw_mid - 1).
    T grad_delta = grad_alpha_in * s.in.sigma * s.in.decay;
    if (p.grad_density_in != nullptr) {
      const T g = grad_alpha_in * s.delta * s.in.decay * s.in.slope / T(2);
      p.grad_density_in[base + i + 1] = next_density_in + g;
      next_density_in = g;
    }
    if (p.density_out != nullptr) {
      grad_delta += grad_alpha_out * s.out.sigma * s.out.decay;
      if (p.grad_density_out != nullptr) {
        const T g = grad_alpha_out * s.delta * s.out.decay * s.out.slope / T(2);
        p.grad_density_out[base + i + 1] = next_density_out + g;
        next_density_out = g;
      }
    }
    if (p.grad_depths != nullptr) {
      const T grad_mid = grad_depth_mean != T(0)
                             ? grad_depth_mean * trans * (s.a_in + s.a_out) / weight_sum
                             : T(0);
      p.grad_depths[base + i + 1] = next_depths + grad_mid / T(2) + grad_delta;
      next_depths = grad_mid / T(2) - grad_delta;
    }
  }
  // Sample 0 only borders interval 0.
  if (g_f_in != nullptr) write_feature_grad(g_f_in, grad_out, next_w_in, C);
  if (g_f_out != nullptr) write_feature_grad(g_f_out, grad_out, next_w_out, C);
  if (p.grad_blend != nullptr) p.grad_blend[base] = next_blend;
  if (p.grad_density_in != nullptr) p.grad_density_in[base] = next_density_in;
  if (p.grad_density_out != nullptr) p.grad_density_out[base] = next_density_out;
  if (p.grad_depths != nullptr) {
    p.grad_depths[base] = next_depths + (clamped < 0 ? grad_depth : T(0));
  }
}

}  // namespace innout
