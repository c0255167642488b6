#include "parallel.h"

namespace innout {
namespace cpu {

int resolve_num_threads(const CpuOptions& options) {
  if (options.num_threads > 0) return options.num_threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace cpu
}  // namespace innout
