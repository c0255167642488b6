// OpenMP helpers of the CPU backend (private to cpp/src).
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "innout/common.h"

namespace innout {
namespace cpu {

int resolve_num_threads(const CpuOptions& options);

// Runs body(i) for i in [0, n) on the configured threads with a static schedule, so the split of
// work is fixed for a thread count (and every i is handled by exactly one thread).
template <typename Body>
void parallel_for(int64_t n, const CpuOptions& options, Body body) {
  if (n <= 0) return;
#ifdef _OPENMP
  const int threads = resolve_num_threads(options);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n > 1)
  for (int64_t i = 0; i < n; ++i) body(i);
#else
  (void)options;
  for (int64_t i = 0; i < n; ++i) body(i);
#endif
}

}  // namespace cpu
}  // namespace innout
