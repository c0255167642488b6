// CPU launcher of stratified_sample (maths in cpp/include/innout/stratified_sample.h).
#include "innout/cpu.h"
#include "innout/validate.h"
#include "parallel.h"

namespace innout {
namespace cpu {

template <typename T>
Status stratified_sample(const StratifiedSampleParams<T>& p, const CpuOptions& options) {
  INNOUT_RETURN_IF_ERROR(validate(p));
  parallel_for(p.num_rays, options, [&](int64_t ray) { stratified_sample_ray(p, ray); });
  return Status::Ok();
}

template Status stratified_sample<float>(const StratifiedSampleParams<float>&, const CpuOptions&);
template Status stratified_sample<double>(const StratifiedSampleParams<double>&, const CpuOptions&);

}  // namespace cpu
}  // namespace innout
