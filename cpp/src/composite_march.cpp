// CPU launchers of composite_march (maths in cpp/include/innout/composite_march.h): one ray per
// iteration, so every output element belongs to exactly one thread.
#include "innout/cpu.h"
#include "innout/validate.h"
#include "parallel.h"

namespace innout {
namespace cpu {

template <typename T>
Status composite_march_forward(const CompositeMarchParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/false));
  parallel_for(p.num_rays, options, [&](int64_t ray) { composite_march_ray(p, ray); });
  return Status::Ok();
}

template <typename T>
Status composite_march_backward(const CompositeMarchParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p, /*backward=*/true));
  parallel_for(p.num_rays, options, [&](int64_t ray) { composite_march_ray_backward(p, ray); });
  return Status::Ok();
}

template Status composite_march_forward<float>(const CompositeMarchParams<float>&,
                                               const CpuOptions&);
template Status composite_march_forward<double>(const CompositeMarchParams<double>&,
                                                const CpuOptions&);
template Status composite_march_backward<float>(const CompositeMarchParams<float>&,
                                                const CpuOptions&);
template Status composite_march_backward<double>(const CompositeMarchParams<double>&,
                                                 const CpuOptions&);

}  // namespace cpu
}  // namespace innout
