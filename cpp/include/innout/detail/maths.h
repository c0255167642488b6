// Generic maths shared by the single-source op headers (host and device). Internal: everything here
// is in innout::detail and is not part of the API of innout/innout.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "innout/common.h"

namespace innout {
namespace detail {

// softplus(x) and its derivative, the slope sigmoid(x).
template <typename T>
struct Softplus {
  T value;
  T slope;
};

// torch.nn.functional.softplus (beta 1, threshold 20) and its gradient from one exp. Above the
// threshold the value is x and the slope exactly 1, as in torch. Below it, log1p(e) is computed as
// log(u) corrected by the rounding error of u = 1 + e: exact to a few ulp, also for tiny e (where
// it returns e), and log is several times cheaper than log1p. Softplus is the innermost cost of the
// marcher and of the renderer's decoder; a caller that uses only the value pays no more than a
// value-only version, since the unused slope is optimised away.
template <typename T>
INNOUT_HD Softplus<T> softplus(T x) {
  using std::exp;
  using std::log;
  if (x > T(20)) return {x, T(1)};
  const T e = exp(x);
  const T u = T(1) + e;
  const T inverse_u = T(1) / u;
  return {log(u) - ((u - T(1)) - e) * inverse_u, e * inverse_u};
}

template <typename T>
INNOUT_HD T sigmoid(T x) {
  using std::exp;
  return T(1) / (T(1) + exp(-x));
}

// Adds scale * features[0..C) to out[0..C).
template <typename T>
INNOUT_HD void add_scaled(T* INNOUT_RESTRICT out, const T* INNOUT_RESTRICT features, T scale,
                          int64_t C) {
  for (int64_t c = 0; c < C; ++c) out[c] += scale * features[c];
}

// sum_c a[c] b[c], vectorised where the host compiler allows (INNOUT_SIMD_SUM).
template <typename T>
INNOUT_HD T dot(const T* INNOUT_RESTRICT a, const T* INNOUT_RESTRICT b, int64_t C) {
  T sum = T(0);
  INNOUT_SIMD_SUM(sum)
  for (int64_t c = 0; c < C; ++c) sum += a[c] * b[c];
  return sum;
}

INNOUT_HD int64_t larger(int64_t a, int64_t b) { return a > b ? a : b; }

}  // namespace detail
}  // namespace innout
