// CPU launcher of importance_sample (maths in cpp/include/innout/importance_sample.h).
#include "innout/cpu.h"
#include "innout/validate.h"
#include "parallel.h"

namespace innout {
namespace cpu {

template <typename T>
Status importance_sample(const ImportanceSampleParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p));
  if (p.num_importance == 0) return Status::Ok();
  parallel_for(p.num_rays, options, [&](int64_t ray) { importance_sample_ray(p, ray); });
  return Status::Ok();
}

template Status importance_sample<float>(const ImportanceSampleParams<float>&, const CpuOptions&);
template Status importance_sample<double>(const ImportanceSampleParams<double>&, const CpuOptions&);

}  // namespace cpu
}  // namespace innout
