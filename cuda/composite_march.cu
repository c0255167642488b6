// CUDA launchers of composite_march (maths in cpp/include/innout/composite_march.h).
// One thread per ray: the transmittance is a sequential scan along the ray (and the backward a
// reverse scan), and there are enough rays (B * R, typically >= 4096) to fill the GPU.
#include "innout/cuda.h"
#include "innout/validate.h"
#include "launch.cuh"

namespace innout {
namespace cuda {
namespace {

template <typename T>
struct ForwardRay {
  CompositeMarchParams<T> p;
  __device__ void operator()(int64_t ray) const { composite_march_ray(p, ray); }
};

template <typename T>
struct BackwardRay {
  CompositeMarchParams<T> p;
  __device__ void operator()(int64_t ray) const { composite_march_ray_backward(p, ray); }
};

}  // namespace

template <typename T>
Status composite_march_forward(const CompositeMarchParams<T>& p, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/false));
  return detail::launch("composite_march_forward", p.num_rays, options, ForwardRay<T>{p});
}

template <typename T>
Status composite_march_backward(const CompositeMarchParams<T>& p, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/true));
  return detail::launch("composite_march_backward", p.num_rays, options, BackwardRay<T>{p});
}

template Status composite_march_forward<float>(const CompositeMarchParams<float>&,
                                               const CudaOptions&);
template Status composite_march_forward<double>(const CompositeMarchParams<double>&,
                                                const CudaOptions&);
template Status composite_march_backward<float>(const CompositeMarchParams<float>&,
                                                const CudaOptions&);
template Status composite_march_backward<double>(const CompositeMarchParams<double>&,
                                                 const CudaOptions&);

}  // namespace cuda
}  // namespace innout
