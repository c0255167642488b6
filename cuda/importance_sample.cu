// CUDA launcher of importance_sample (maths in cpp/include/innout/importance_sample.h). One thread
// per ray: each ray's cdf and samples are a short sequential computation over its own K values,
// and rays are independent.
#include "innout/cuda.h"
#include "innout/validate.h"
#include "launch.cuh"

namespace innout {
namespace cuda {
namespace {

template <typename T>
struct ImportanceRay {
  ImportanceSampleParams<T> p;
  __device__ void operator()(int64_t ray) const { importance_sample_ray(p, ray); }
};

}  // namespace

template <typename T>
Status importance_sample(const ImportanceSampleParams<T>& p, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p));
  // No samples requested: the pointers may be null (validate allows it), so touch nothing.
  if (p.num_importance == 0) return Status::Ok();
  return detail::launch("importance_sample", p.num_rays, options, ImportanceRay<T>{p});
}

template Status importance_sample<float>(const ImportanceSampleParams<float>&, const CudaOptions&);
template Status importance_sample<double>(const ImportanceSampleParams<double>&,
                                          const CudaOptions&);

}  // namespace cuda
}  // namespace innout
