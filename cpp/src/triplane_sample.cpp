// CPU launchers of triplane_sample (maths in cpp/include/innout/triplane_sample.h).
#include "innout/cpu.h"
#include "innout/validate.h"
#include "parallel.h"

namespace innout {
namespace cpu {

template <typename T>
Status triplane_sample_forward(const TriplaneSampleParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/false));
  parallel_for(p.batch * p.num_points, options, [&](int64_t index) {
    triplane_sample_point(p, index / p.num_points, index % p.num_points, 0, p.channels);
  });
  return Status::Ok();
}

template <typename T>
Status triplane_sample_backward(const TriplaneSampleParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/true));
  if (p.grad_points != nullptr) {
    parallel_for(p.batch * p.num_points, options, [&](int64_t index) {
      triplane_sample_grad_point(p, index / p.num_points, index % p.num_points);
    });
  }
  if (p.grad_planes != nullptr) {
    // The scatter into the planes is split by (plane batch, plane, channel range) instead of by
    // point: each task visits every point but owns its slice of channels, so no two threads ever
    // add to the same element (no atomics, no per-thread copies of the planes) and the order of
    // accumulation - point order - does not depend on the thread count.
    const int64_t plane_tasks = p.plane_batch * 3;
    const int threads = resolve_num_threads(options);
    int64_t chunks = (2 * threads + plane_tasks - 1) / plane_tasks;
    if (chunks > p.channels) chunks = p.channels;
    if (chunks < 1) chunks = 1;
    const int64_t chunk_size = (p.channels + chunks - 1) / chunks;
    const int64_t plane_size = p.height * p.width * p.channels;
    parallel_for(plane_tasks * chunks, options, [&](int64_t task) {
      const int64_t plane_task = task / chunks;
      const int64_t c_begin = (task % chunks) * chunk_size;
      const int64_t c_end = c_begin + chunk_size < p.channels ? c_begin + chunk_size : p.channels;
      if (c_begin >= c_end) return;
      const int64_t plane_batch_index = plane_task / 3;
      const int k = static_cast<int>(plane_task % 3);
      T* plane = p.grad_planes + plane_task * plane_size;
      for (int64_t texel = 0; texel < p.height * p.width; ++texel) {
        for (int64_t c = c_begin; c < c_end; ++c) plane[texel * p.channels + c] = T(0);
      }
      const auto add = [](T* target, T value) { *target += value; };
      for (int64_t b = 0; b < p.batch; ++b) {
        if (triplane_plane_batch_index(p, b) != plane_batch_index) continue;
        for (int64_t m = 0; m < p.num_points; ++m) {
          triplane_sample_scatter_point(p, b, m, k, c_begin, c_end, add);
        }
      }
    });
  }
  return Status::Ok();
}

template Status triplane_sample_forward<float>(const TriplaneSampleParams<float>&,
                                               const CpuOptions&);
template Status triplane_sample_forward<double>(const TriplaneSampleParams<double>&,
                                                const CpuOptions&);
template Status triplane_sample_backward<float>(const TriplaneSampleParams<float>&,
                                                const CpuOptions&);
template Status triplane_sample_backward<double>(const TriplaneSampleParams<double>&,
                                                 const CpuOptions&);

}  // namespace cpu
}  // namespace innout
