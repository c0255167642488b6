// CPU backend (OpenMP). Each launcher validates its params, then runs the single-source per-point /
// per-ray functions of the op headers in parallel. Results are bitwise identical for any thread
// count: work is split so that every output element is written by one thread, in a fixed order.
#pragma once

#include "innout/common.h"
#include "innout/composite_march.h"
#include "innout/importance_sample.h"
#include "innout/stratified_sample.h"
#include "innout/triplane_sample.h"

namespace innout {
namespace cpu {

template <typename T>
Status triplane_sample_forward(const TriplaneSampleParams<T>& params, const CpuOptions& options);
// Fills params.grad_planes and/or params.grad_points (whichever is non-null).
template <typename T>
Status triplane_sample_backward(const TriplaneSampleParams<T>& params, const CpuOptions& options);

template <typename T>
Status composite_march_forward(const CompositeMarchParams<T>& params, const CpuOptions& options);
template <typename T>
Status composite_march_backward(const CompositeMarchParams<T>& params, const CpuOptions& options);

template <typename T>
Status importance_sample(const ImportanceSampleParams<T>& params, const CpuOptions& options);
template <typename T>
Status stratified_sample(const StratifiedSampleParams<T>& params, const CpuOptions& options);

// Number of threads the CPU backend uses for `options` (OpenMP's default when <= 0).
int resolve_num_threads(const CpuOptions& options);

}  // namespace cpu
}  // namespace innout
