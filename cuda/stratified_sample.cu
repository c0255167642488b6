// CUDA launcher of stratified_sample (maths in cpp/include/innout/stratified_sample.h). One thread
// per ray: each ray's K depths are a short sequential computation, and rays are independent.
#include "innout/cuda.h"
#include "innout/validate.h"
#include "launch.cuh"

namespace innout {
namespace cuda {
namespace {

template <typename T>
struct StratifiedRay {
  StratifiedSampleParams<T> p;
  __device__ void operator()(int64_t ray) const { stratified_sample_ray(p, ray); }
};

}  // namespace

template <typename T>
Status stratified_sample(const StratifiedSampleParams<T>& p, const CudaOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p));
  return detail::launch("stratified_sample", p.num_rays, options, StratifiedRay<T>{p});
}

template Status stratified_sample<float>(const StratifiedSampleParams<float>&, const CudaOptions&);
template Status stratified_sample<double>(const StratifiedSampleParams<double>&,
                                          const CudaOptions&);

}  // namespace cuda
}  // namespace innout
