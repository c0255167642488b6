// importance_sample: EG3D's fine depths drawn from the coarse pass's weights (no gradient).
//
// For a ray with K coarse depths t and K-1 coarse weights w (the marcher's W_i):
//   1. smooth: w' = avg_pool(k=2, s=1)(max_pool(k=2, s=1, pad=1)(w)) + 0.01       (K-1 values)
//   2. keep w'_1..w'_{K-3}, add 1e-5, normalise to a pdf, cumulative sum with a leading 0 (K-2 values)
//   3. bins are the coarse midpoints m_j = (t_j + t_{j+1}) / 2; for each uniform u:
//        j = (number of cdf entries <= u);  lo = max(j - 1, 0);  hi = min(j, K - 3)
//        den = cdf[hi] - cdf[lo], replaced by 1 when < 1e-5
//        sample = m_lo + (u - cdf[lo]) / den * (m_hi - m_lo)
// This is EG3D's sample_importance + sample_pdf exactly, including its use of only the first K-2
// midpoints as bin edges (the pretrained models were rendered that way).
// The uniforms are inputs, so that the caller owns the randomness (a seeded generator, or
// linspace(0, 1, N) for deterministic inference) and results can be matched draw for draw.
#pragma once

#include "innout/common.h"

namespace innout {

template <typename T>
struct ImportanceSampleParams {
  int64_t num_rays = 0;         // B * R
  int64_t num_samples = 0;      // K coarse samples per ray, K >= 4
  int64_t num_importance = 0;   // N fine samples per ray
  const T* depths = nullptr;    // [num_rays, K] coarse depths, sorted
  const T* weights = nullptr;   // [num_rays, K-1] coarse weights, finite and >= 0 (precondition)
  const T* uniforms = nullptr;  // [num_rays, N] in [0, 1]
  T* cdf = nullptr;      // [num_rays, K-2] workspace (caller-owned; the library never allocates)
  T* samples = nullptr;  // [num_rays, N] output
};

constexpr double kImportanceWeightBias = 0.01;  // added after smoothing (EG3D)
constexpr double kImportancePdfEpsilon = 1e-5;  // added to the weights and the cdf-gap floor (EG3D)

template <typename T>
INNOUT_HD T smoothed_weight(const T* w, int64_t n, int64_t j) {
  // max_pool(k=2, s=1, pad=1) gives n+1 values mp_q = max(w_{q-1}, w_q) (missing neighbours
  // ignored); avg_pool(k=2, s=1) of those gives (mp_j + mp_{j+1}) / 2.
  const T left = j > 0 ? (w[j - 1] > w[j] ? w[j - 1] : w[j]) : w[j];
  const T right = j + 1 < n ? (w[j + 1] > w[j] ? w[j + 1] : w[j]) : w[j];
  return (left + right) / T(2) + T(kImportanceWeightBias);
}

template <typename T>
INNOUT_HD void importance_sample_ray(const ImportanceSampleParams<T>& p, int64_t ray) {
  const int64_t K = p.num_samples;
  const int64_t num_bins = K - 3;  // pdf entries
  const T* t = p.depths + ray * K;
  const T* w = p.weights + ray * (K - 1);
  T* cdf = p.cdf + ray * (K - 2);
  T total = T(0);
  for (int64_t j = 0; j < num_bins; ++j) {
    total += smoothed_weight(w, K - 1, j + 1) + T(kImportancePdfEpsilon);
  }
  cdf[0] = T(0);
  for (int64_t j = 0; j < num_bins; ++j) {
    cdf[j + 1] = cdf[j] + (smoothed_weight(w, K - 1, j + 1) + T(kImportancePdfEpsilon)) / total;
  }
  const T* u = p.uniforms + ray * p.num_importance;
  T* out = p.samples + ray * p.num_importance;
  for (int64_t n = 0; n < p.num_importance; ++n) {
    const T un = u[n];
    // upper bound: first cdf entry > u (binary search; cdf is non-decreasing)
    int64_t lo_search = 0;
    int64_t hi_search = K - 2;
    while (lo_search < hi_search) {
      const int64_t mid = (lo_search + hi_search) / 2;
      if (cdf[mid] <= un) {
        lo_search = mid + 1;
      } else {
        hi_search = mid;
      }
    }
    const int64_t j = lo_search;
    const int64_t lo = j - 1 > 0 ? j - 1 : 0;
    const int64_t hi = j < num_bins ? j : num_bins;
    T den = cdf[hi] - cdf[lo];
    if (den < T(kImportancePdfEpsilon)) den = T(1);
    const T bin_lo = (t[lo] + t[lo + 1]) / T(2);
    const T bin_hi = (t[hi] + t[hi + 1]) / T(2);
    out[n] = bin_lo + (un - cdf[lo]) / den * (bin_hi - bin_lo);
  }
}

}  // namespace innout
