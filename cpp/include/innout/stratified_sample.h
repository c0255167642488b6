// stratified_sample: EG3D's coarse depths. K depths per ray spaced evenly from near to far, each
// pushed forward by u_k times one spacing (so the last one may pass `far`, as in EG3D):
//   t_k = near + k (far - near) / (K - 1) + u_k (far - near) / (K - 1)
// uniforms == nullptr gives the un-jittered, deterministic depths used for flicker-free video.
#pragma once

#include "innout/common.h"

namespace innout {

template <typename T>
struct StratifiedSampleParams {
  int64_t num_rays = 0;         // B * R
  int64_t num_samples = 0;      // K >= 2
  const T* near = nullptr;      // [num_rays] start of each ray's depth range, finite, <= far
  const T* far = nullptr;       // [num_rays] end of each ray's depth range, finite
  const T* uniforms = nullptr;  // [num_rays, K] jitter in [0, 1); nullptr = no jitter
  T* depths = nullptr;          // [num_rays, K] output, sorted when uniforms are in [0, 1)
};

template <typename T>
INNOUT_HD void stratified_sample_ray(const StratifiedSampleParams<T>& p, int64_t ray) {
  const int64_t K = p.num_samples;
  const T near = p.near[ray];
  const T spacing = (p.far[ray] - near) / T(K - 1);
  T* out = p.depths + ray * K;
  for (int64_t k = 0; k < K; ++k) {
    const T jitter = p.uniforms != nullptr ? p.uniforms[ray * K + k] : T(0);
    out[k] = near + (T(k) + jitter) * spacing;
  }
}

}  // namespace innout
