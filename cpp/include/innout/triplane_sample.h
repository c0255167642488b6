// triplane_sample: the feature of a 3-D point in EG3D's tri-plane representation.
//
//   features[b, m, :] = mean_{k=0..2} bilinear(planes[b or 0, k], project_k(points[b, m] * 2 / box_warp))
//
// with EG3D's plane projections (x, y), (x, z), (z, x) - the third pair is the order EG3D's
// projection matrices actually produce, and the released weights depend on it - and
// torch.nn.functional.grid_sample semantics: bilinear, zero padding, align_corners = False.
//
// Non-finite coordinates follow grid_sample on the CPU exactly. A plane coordinate that is not
// finite after unnormalisation - NaN, +-inf, or a finite point that overflows because box_warp is
// tiny - has NaN interpolation weights there, so the point's features are NaN; no texel is in
// bounds, so the planes get no gradient from it; and the point's gradient along the plane's other
// axis is NaN, while along the non-finite axis it is 0 (times the upstream gradient). box_warp must
// be finite and > 0 (validate.h).
#pragma once

#include <limits>

#include "innout/common.h"
#include "innout/detail/maths.h"

namespace innout {

// Planes are read channels-last: element (b, k, y, x, c) lives at
//   planes[b * plane_stride_batch + k * plane_stride_plane + (y * width + x) * channels + c]
// so that the C channels of one texel are contiguous (one cache line / one coalesced warp read).
template <typename T>
struct TriplaneSampleParams {
  const T* planes = nullptr;         // [plane_batch, 3, height, width, channels] (channels-last)
  int64_t plane_batch = 0;           // 1 (planes shared by every batch item) or batch
  int64_t channels = 0;              // C
  int64_t height = 0;                // H (rows, indexed by the second projected coordinate)
  int64_t width = 0;                 // W (columns, indexed by the first projected coordinate)
  const T* points = nullptr;         // [batch, num_points, 3] contiguous, world coordinates
  int64_t batch = 0;                 // B
  int64_t num_points = 0;            // M
  T box_warp = T(1);                 // finite, > 0: the planes span [-box_warp/2, box_warp/2]^3
  T* features = nullptr;             // [batch, num_points, channels] contiguous (forward output)
  const T* grad_features = nullptr;  // [batch, num_points, channels] (backward input)
  T* grad_planes = nullptr;  // like planes, channels-last; nullptr = not needed (overwritten)
  T* grad_points = nullptr;  // [batch, num_points, 3]; nullptr = not needed (overwritten)
};

namespace detail {

// sum_c 0 * g[c]: 0, or NaN when an upstream gradient is not finite. grid_sample's gradient along
// a finite axis of a point with a non-finite coordinate is this (its texels are all outside).
template <typename T>
INNOUT_HD T zero_times_sum(const T* g, int64_t count) {
  T sum = T(0);
  for (int64_t c = 0; c < count; ++c) sum += T(0) * g[c];
  return sum;
}

}  // namespace detail

// The two projected coordinates of point p on plane k, in grid_sample's [-1, 1] convention.
template <typename T>
INNOUT_HD void triplane_project(const T* p, int k, T scale, T& gx, T& gy) {
  // EG3D's planes are the identity, a y/z swap and a cyclic permutation; multiplying a point by the
  // inverse of each and keeping two coordinates gives (x, y), (x, z) and (z, x).
  const int ax = (k == 2) ? 2 : 0;
  const int ay = (k == 0) ? 1 : (k == 1 ? 2 : 0);
  gx = p[ax] * scale;
  gy = p[ay] * scale;
}

// Which point coordinate each projected coordinate came from (for the gradient).
INNOUT_HD int triplane_axis_x(int k) { return (k == 2) ? 2 : 0; }
INNOUT_HD int triplane_axis_y(int k) { return (k == 0) ? 1 : (k == 1 ? 2 : 0); }

// The four bilinear taps of one projected point: texel offsets (y * width + x), weights, and the
// weights' derivatives with respect to the unnormalised pixel coordinates ix, iy.
template <typename T>
struct BilinearTaps {
  int64_t texel[4];  // nw, ne, sw, se; only meaningful where valid
  bool valid[4];     // inside the plane (zero padding outside)
  T weight[4];
  T dweight_dix[4];
  T dweight_diy[4];
  T dix_dgx;  // width / 2: d(unnormalised x) / d(grid x)
  T diy_dgy;  // height / 2

  // Whether the unnormalised x (y) was finite: its fractional part tx (ty) is NaN exactly where it
  // was not (inf - floor(inf) = NaN), and then the weights are NaN and no tap is valid, so
  // grid_sample's interpolation is NaN. Read back from the taps so that the common, finite case
  // pays nothing for it.
  INNOUT_HD bool finite_x() const { return dweight_diy[3] == dweight_diy[3]; }  // tx
  INNOUT_HD bool finite_y() const { return dweight_dix[3] == dweight_dix[3]; }  // ty
};

template <typename T>
INNOUT_HD BilinearTaps<T> bilinear_taps(T gx, T gy, int64_t height, int64_t width) {
  using std::floor;
  BilinearTaps<T> taps;
  // grid_sample's unnormalisation for align_corners = False in the order of its CPU kernel,
  // (g + 1) * (size / 2) - 0.5: bitwise equal to ((g + 1) * size - 1) / 2 in range (scaling by 2
  // is exact), and it overflows to inf exactly where grid_sample's does (NaN features there).
  const T ix = (gx + T(1)) * (T(width) / T(2)) - T(0.5);
  const T iy = (gy + T(1)) * (T(height) / T(2)) - T(0.5);
  const T x0 = floor(ix);
  const T y0 = floor(iy);
  const T tx = ix - x0;
  const T ty = iy - y0;
  taps.weight[0] = (T(1) - tx) * (T(1) - ty);
  taps.weight[1] = tx * (T(1) - ty);
  taps.weight[2] = (T(1) - tx) * ty;
  taps.weight[3] = tx * ty;
  taps.dweight_dix[0] = -(T(1) - ty);
  taps.dweight_dix[1] = T(1) - ty;
  taps.dweight_dix[2] = -ty;
  taps.dweight_dix[3] = ty;
  taps.dweight_diy[0] = -(T(1) - tx);
  taps.dweight_diy[1] = -tx;
  taps.dweight_diy[2] = T(1) - tx;
  taps.dweight_diy[3] = tx;
  taps.dix_dgx = T(width) / T(2);
  taps.diy_dgy = T(height) / T(2);
  // Bounds are tested in floating point before any integer conversion: a huge or NaN coordinate
  // must not be cast to an integer (undefined behaviour); it simply has no valid tap.
  const T xs[2] = {x0, x0 + T(1)};
  const T ys[2] = {y0, y0 + T(1)};
  for (int corner = 0; corner < 4; ++corner) {
    const T x = xs[corner & 1];
    const T y = ys[corner >> 1];
    const bool inside = x >= T(0) && x <= T(width - 1) && y >= T(0) && y <= T(height - 1);
    taps.valid[corner] = inside;
    taps.texel[corner] = inside ? static_cast<int64_t>(y) * width + static_cast<int64_t>(x) : 0;
  }
  return taps;
}

// Plane batch index used by batch item b (planes may be shared across the batch).
template <typename T>
INNOUT_HD int64_t triplane_plane_batch_index(const TriplaneSampleParams<T>& p, int64_t b) {
  return p.plane_batch == 1 ? 0 : b;
}

// Channels accumulated in registers at a time by the forward.
constexpr int64_t kTriplaneChannelBlock = 32;

// A point with a non-finite grid coordinate: NaN in every channel (a NaN interpolation weight makes
// the mean NaN). Out of line: the common, finite point pays nothing for it.
template <typename T>
INNOUT_HD_COLD void triplane_fill_nan(T* out, int64_t c_begin, int64_t c_end) {
  for (int64_t c = c_begin; c < c_end; ++c) out[c] = std::numeric_limits<T>::quiet_NaN();
}

// Forward for point (b, m), channels [c_begin, c_end): writes features[b, m, c].
// Sums into a local block (registers / stack, not the output row, which the compiler would have to
// assume aliases the planes) and divides by 3 at the end, as torch.mean does.
template <typename T>
INNOUT_HD void triplane_sample_point(const TriplaneSampleParams<T>& p, int64_t b, int64_t m,
                                     int64_t c_begin, int64_t c_end) {
  const T* point = p.points + (b * p.num_points + m) * 3;
  T* out = p.features + (b * p.num_points + m) * p.channels;
  const T scale = T(2) / p.box_warp;
  const int64_t plane_size = p.height * p.width * p.channels;
  const T* plane_base = p.planes + triplane_plane_batch_index(p, b) * 3 * plane_size;
  BilinearTaps<T> taps[3];
  for (int k = 0; k < 3; ++k) {
    T gx, gy;
    triplane_project(point, k, scale, gx, gy);
    taps[k] = bilinear_taps(gx, gy, p.height, p.width);
  }
  // weight[3] = tx ty is NaN exactly where a coordinate was not finite: one test for the point.
  const T probe = taps[0].weight[3] + taps[1].weight[3] + taps[2].weight[3];
  if (probe != probe) {
    triplane_fill_nan(out, c_begin, c_end);
    return;
  }
  if (c_end - c_begin == 1) {
    // One channel per call (the CUDA backend's thread mapping): a scalar sum, so that no local
    // array has to live in (slow) per-thread memory on the GPU.
    T sum = T(0);
    for (int k = 0; k < 3; ++k) {
      const T* plane = plane_base + k * plane_size + c_begin;
      for (int corner = 0; corner < 4; ++corner) {
        if (taps[k].valid[corner])
          sum += taps[k].weight[corner] * plane[taps[k].texel[corner] * p.channels];
      }
    }
    out[c_begin] = sum / T(3);
    return;
  }
  for (int64_t block = c_begin; block < c_end; block += kTriplaneChannelBlock) {
    const int64_t count =
        c_end - block < kTriplaneChannelBlock ? c_end - block : kTriplaneChannelBlock;
    T sum[kTriplaneChannelBlock];
    for (int64_t c = 0; c < count; ++c) sum[c] = T(0);
    for (int k = 0; k < 3; ++k) {
      const T* plane = plane_base + k * plane_size + block;
      for (int corner = 0; corner < 4; ++corner) {
        if (!taps[k].valid[corner]) continue;
        const T* INNOUT_RESTRICT texel = plane + taps[k].texel[corner] * p.channels;
        const T w = taps[k].weight[corner];
        for (int64_t c = 0; c < count; ++c) sum[c] += w * texel[c];
      }
    }
    for (int64_t c = 0; c < count; ++c) out[block + c] = sum[c] / T(3);
  }
}

// d loss / d (unnormalised x, y) of one plane's bilinear sample: sum over the valid taps of the
// weights' derivatives times g . texel. Adds to grad_ix and grad_iy.
template <typename T>
INNOUT_HD void triplane_plane_grad(const BilinearTaps<T>& taps, const T* plane, const T* grad_out,
                                   int64_t channels, T& grad_ix, T& grad_iy) {
  for (int corner = 0; corner < 4; ++corner) {
    if (!taps.valid[corner]) continue;
    const T* texel = plane + taps.texel[corner] * channels;
    T dot = T(0);
    INNOUT_SIMD_SUM(dot)
    for (int64_t c = 0; c < channels; ++c) dot += grad_out[c] * texel[c];
    grad_ix += taps.dweight_dix[corner] * dot;
    grad_iy += taps.dweight_diy[corner] * dot;
  }
}

// The point gradient from its three planes' (grad_ix, grad_iy): the mean over 3 planes and the
// unnormalisation per plane, as grid_sample's backward sums them; the 2 / box_warp scaling last, as
// the chain rule through `points * scale` applies it (0 * inf = NaN when box_warp is tiny, as
// there).
template <typename T>
INNOUT_HD void triplane_add_plane_grad(const BilinearTaps<T>& taps, int k, T grad_ix, T grad_iy,
                                       T* grad) {
  grad[triplane_axis_x(k)] += grad_ix * taps.dix_dgx / T(3);
  grad[triplane_axis_y(k)] += grad_iy * taps.diy_dgy / T(3);
}

// triplane_sample_grad_point for a point with a non-finite grid coordinate on some plane. There,
// d weight / d x involves the y weights and vice versa: NaN along the other axis of a non-finite
// coordinate, and 0 (no texel in bounds) along a finite one. Out of line, like triplane_fill_nan.
template <typename T>
INNOUT_HD_COLD void triplane_sample_grad_point_non_finite(const TriplaneSampleParams<T>& p,
                                                          int64_t b, int64_t m) {
  const T* point = p.points + (b * p.num_points + m) * 3;
  T* grad_point = p.grad_points + (b * p.num_points + m) * 3;
  const T* grad_out = p.grad_features + (b * p.num_points + m) * p.channels;
  const T scale = T(2) / p.box_warp;
  const int64_t plane_size = p.height * p.width * p.channels;
  const T* plane_base = p.planes + triplane_plane_batch_index(p, b) * 3 * plane_size;
  const T zero = detail::zero_times_sum(grad_out, p.channels);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  T grad[3] = {T(0), T(0), T(0)};
  for (int k = 0; k < 3; ++k) {
    T gx, gy;
    triplane_project(point, k, scale, gx, gy);
    const BilinearTaps<T> taps = bilinear_taps(gx, gy, p.height, p.width);
    T grad_ix = T(0);
    T grad_iy = T(0);
    if (taps.finite_x() && taps.finite_y()) {
      triplane_plane_grad(taps, plane_base + k * plane_size, grad_out, p.channels, grad_ix,
                          grad_iy);
    } else {
      grad_ix = taps.finite_y() ? zero : nan;
      grad_iy = taps.finite_x() ? zero : nan;
    }
    triplane_add_plane_grad(taps, k, grad_ix, grad_iy, grad);
  }
  for (int axis = 0; axis < 3; ++axis) grad_point[axis] = grad[axis] * scale;
}

// Gradient of the loss with respect to point (b, m): grad_points[b, m, :].
template <typename T>
INNOUT_HD void triplane_sample_grad_point(const TriplaneSampleParams<T>& p, int64_t b, int64_t m) {
  const T* point = p.points + (b * p.num_points + m) * 3;
  T* grad_point = p.grad_points + (b * p.num_points + m) * 3;
  const T* grad_out = p.grad_features + (b * p.num_points + m) * p.channels;
  const T scale = T(2) / p.box_warp;
  const int64_t plane_size = p.height * p.width * p.channels;
  const T* plane_base = p.planes + triplane_plane_batch_index(p, b) * 3 * plane_size;
  T grad[3] = {T(0), T(0), T(0)};
  T probe = T(0);  // sum of tx ty over the planes: NaN iff a grid coordinate was not finite
  // triplane_plane_grad and triplane_add_plane_grad written out: the compiler keeps the
  // accumulators in registers then (about 2% fewer instructions than with the calls).
  for (int k = 0; k < 3; ++k) {
    T gx, gy;
    triplane_project(point, k, scale, gx, gy);
    const BilinearTaps<T> taps = bilinear_taps(gx, gy, p.height, p.width);
    probe += taps.weight[3];
    const T* plane = plane_base + k * plane_size;
    T grad_ix = T(0);
    T grad_iy = T(0);
    for (int corner = 0; corner < 4; ++corner) {
      if (!taps.valid[corner]) continue;
      const T* texel = plane + taps.texel[corner] * p.channels;
      T dot = T(0);
      INNOUT_SIMD_SUM(dot)
      for (int64_t c = 0; c < p.channels; ++c) dot += grad_out[c] * texel[c];
      grad_ix += taps.dweight_dix[corner] * dot;
      grad_iy += taps.dweight_diy[corner] * dot;
    }
    grad[triplane_axis_x(k)] += grad_ix * taps.dix_dgx / T(3);
    grad[triplane_axis_y(k)] += grad_iy * taps.diy_dgy / T(3);
  }
  if (probe != probe) {
    triplane_sample_grad_point_non_finite(p, b, m);
    return;
  }
  grad_point[0] = grad[0] * scale;
  grad_point[1] = grad[1] * scale;
  grad_point[2] = grad[2] * scale;
}

// Scatter of point (b, m)'s upstream gradient into plane k of grad_planes, channels
// [c_begin, c_end). The CPU backend gives each thread its own channel range so that no two threads
// write the same element; the CUDA backend uses atomics here (the scatter is inherent).
template <typename T, typename AddFn>
INNOUT_HD void triplane_sample_scatter_point(const TriplaneSampleParams<T>& p, int64_t b, int64_t m,
                                             int k, int64_t c_begin, int64_t c_end, AddFn add) {
  const T* point = p.points + (b * p.num_points + m) * 3;
  const T* grad_out = p.grad_features + (b * p.num_points + m) * p.channels;
  const T scale = T(2) / p.box_warp;
  const int64_t plane_size = p.height * p.width * p.channels;
  T* plane = p.grad_planes + (triplane_plane_batch_index(p, b) * 3 + k) * plane_size;
  T gx, gy;
  triplane_project(point, k, scale, gx, gy);
  const BilinearTaps<T> taps = bilinear_taps(gx, gy, p.height, p.width);
  for (int corner = 0; corner < 4; ++corner) {
    if (!taps.valid[corner]) continue;
    T* texel = plane + taps.texel[corner] * p.channels;
    const T w = taps.weight[corner] / T(3);
    for (int64_t c = c_begin; c < c_end; ++c) add(texel + c, w * grad_out[c]);
  }
}

}  // namespace innout
