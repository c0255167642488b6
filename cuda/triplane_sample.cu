// CUDA launchers of triplane_sample (maths in cpp/include/innout/triplane_sample.h).
//
// Thread mapping: the forward and the plane scatter run one thread per (point[, plane], channel)
// with the channel fastest. Planes are channels-last, so the 32 threads of a warp read (or add to)
// 32 contiguous channels of the same texel - coalesced - and write one contiguous feature row.
// Each thread recomputes its point's bilinear taps; that is a few flops next to the memory traffic.
// The point gradient needs a dot product over all channels, so it runs one thread per point.
#include "innout/cuda.h"
#include "innout/validate.h"
#include "launch.cuh"

namespace innout {
namespace cuda {
namespace {

template <typename T>
struct ForwardChannel {
  TriplaneSampleParams<T> p;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % p.channels;
    const int64_t point = i / p.channels;
    triplane_sample_point(p, point / p.num_points, point % p.num_points, c, c + 1);
  }
};

template <typename T>
struct GradPoint {
  TriplaneSampleParams<T> p;
  __device__ void operator()(int64_t i) const {
    triplane_sample_grad_point(p, i / p.num_points, i % p.num_points);
  }
};

// Many points fall into the same texel (and with shared planes, many batch items too), so the
// scatter into grad_planes is inherently many-to-one: atomics are the simple, correct choice here.
// The CPU backend avoids them by splitting work by channel range, which has too little
// parallelism for a GPU. A functor because device lambdas would need --extended-lambda.
struct AtomicAdd {
  template <typename T>
  __host__ __device__ void operator()(T* target, T value) const {
#ifdef __CUDA_ARCH__
    atomicAdd(target, value);  // double atomicAdd needs sm_60+; every built arch is sm_80+
#else
    *target += value;  // never used: the scatter only runs in kernels
#endif
  }
};

template <typename T>
struct ScatterChannel {
  TriplaneSampleParams<T> p;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % p.channels;
    const int64_t rest = i / p.channels;
    const int k = static_cast<int>(rest % 3);
    const int64_t point = rest / 3;
    triplane_sample_scatter_point(p, point / p.num_points, point % p.num_points, k, c, c + 1,
                                  AtomicAdd{});
  }
};

}  // namespace

template <typename T>
Status triplane_sample_forward(const TriplaneSampleParams<T>& p, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/false));
  const int64_t points = p.batch * p.num_points;
  if (points == 0) return Status::Ok();
  return detail::launch("triplane_sample_forward", points * p.channels, options,
                        ForwardChannel<T>{p});
}

template <typename T>
Status triplane_sample_backward(const TriplaneSampleParams<T>& p, const CudaOptions& options) {
  const char* op = "triplane_sample_backward";
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/true));
  const int64_t points = p.batch * p.num_points;
  if (p.grad_points != nullptr && points > 0) {
    INNOUT_RETURN_IF_ERROR(detail::launch(op, points, options, GradPoint<T>{p}));
  }
  if (p.grad_planes != nullptr) {
    // grad_planes is overwritten, not accumulated: zero it even when there are no points (the
    // gradient is then zero), as the CPU backend does. Same stream, so it precedes the scatter.
    const size_t bytes =
        static_cast<size_t>(p.plane_batch * 3 * p.height * p.width * p.channels) * sizeof(T);
    const cudaError_t err = cudaMemsetAsync(p.grad_planes, 0, bytes, detail::stream_of(options));
    if (err != cudaSuccess) return detail::device_error(op, err);
    INNOUT_RETURN_IF_ERROR(
        detail::launch(op, points * 3 * p.channels, options, ScatterChannel<T>{p}));
  }
  return Status::Ok();
}

template Status triplane_sample_forward<float>(const TriplaneSampleParams<float>&,
                                               const CudaOptions&);
template Status triplane_sample_forward<double>(const TriplaneSampleParams<double>&,
                                                const CudaOptions&);
template Status triplane_sample_backward<float>(const TriplaneSampleParams<float>&,
                                                const CudaOptions&);
template Status triplane_sample_backward<double>(const TriplaneSampleParams<double>&,
                                                 const CudaOptions&);

}  // namespace cuda
}  // namespace innout
