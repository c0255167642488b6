// Boundary checks shared by the CPU and CUDA launchers: every size, pointer and scalar parameter an
// op will use is checked before any kernel runs, and the message says what was expected.
//
// Buffer contents are not read here: a CUDA launcher's buffers are device memory, which the host
// could only inspect by synchronising with the caller's stream. The ranges documented for them
// (blend and uniforms in [0, 1], finite near <= far, finite non-negative importance weights) are
// preconditions of this API; innout's Python ops check them before calling it.
#pragma once

#include <string>

#include "innout/common.h"
#include "innout/composite_march.h"
#include "innout/importance_sample.h"
#include "innout/stratified_sample.h"
#include "innout/triplane_sample.h"

namespace innout {

inline Status require(bool condition, const std::string& op, const std::string& what) {
  return condition ? Status::Ok() : Status::Invalid(op + ": expected " + what);
}

#define INNOUT_RETURN_IF_ERROR(expr)   \
  do {                                 \
    ::innout::Status status_ = (expr); \
    if (!status_.ok()) return status_; \
  } while (0)

template <typename T>
Status validate(const TriplaneSampleParams<T>& p, bool backward) {
  const std::string op = "triplane_sample";
  INNOUT_RETURN_IF_ERROR(
      require(p.batch >= 0 && p.num_points >= 0, op,
              "batch >= 0 and num_points >= 0, got batch=" + std::to_string(p.batch) +
                  " num_points=" + std::to_string(p.num_points)));
  INNOUT_RETURN_IF_ERROR(require(p.channels > 0 && p.height > 0 && p.width > 0, op,
                                 "planes with C, H, W > 0, got C=" + std::to_string(p.channels) +
                                     " H=" + std::to_string(p.height) +
                                     " W=" + std::to_string(p.width)));
  INNOUT_RETURN_IF_ERROR(require(p.plane_batch == 1 || p.plane_batch == p.batch, op,
                                 "plane batch 1 or equal to the point batch " +
                                     std::to_string(p.batch) + ", got " +
                                     std::to_string(p.plane_batch)));
  // Not finite, the cube the planes span would be infinite (inf) or undefined (NaN); a tiny
  // box_warp is valid (coordinates overflow and features are NaN, as grid_sample gives).
  INNOUT_RETURN_IF_ERROR(require(p.box_warp > T(0) && detail::is_finite(p.box_warp), op,
                                 "a finite box_warp > 0, got " + std::to_string(p.box_warp)));
  const bool empty = p.batch * p.num_points == 0;
  INNOUT_RETURN_IF_ERROR(require(p.planes != nullptr, op, "a planes pointer"));
  INNOUT_RETURN_IF_ERROR(require(empty || p.points != nullptr, op, "a points pointer"));
  if (!backward) {
    return require(empty || p.features != nullptr, op, "a features output pointer");
  }
  return require(empty || p.grad_features != nullptr, op, "a grad_features pointer");
}

template <typename T>
Status validate(const CompositeMarchParams<T>& p, bool backward) {
  const std::string op = "composite_march";
  INNOUT_RETURN_IF_ERROR(require(p.num_rays >= 0, op, "num_rays >= 0"));
  INNOUT_RETURN_IF_ERROR(require(
      p.num_samples >= 2, op, "at least 2 samples per ray, got " + std::to_string(p.num_samples)));
  INNOUT_RETURN_IF_ERROR(require(p.channels > 0, op, "channels > 0"));
  const bool has_out = p.density_out != nullptr;
  INNOUT_RETURN_IF_ERROR(
      require(has_out == (p.features_out != nullptr) && has_out == (p.blend != nullptr), op,
              "density_out, features_out and blend all given or all absent"));
  if (p.num_rays == 0) return Status::Ok();
  INNOUT_RETURN_IF_ERROR(
      require(p.depths != nullptr && p.density_in != nullptr && p.features_in != nullptr, op,
              "depths, density_in and features_in pointers"));
  INNOUT_RETURN_IF_ERROR(require(p.weights != nullptr && p.transmittance != nullptr, op,
                                 "weights and transmittance buffers"));
  if (!backward) {
    return require(p.composite != nullptr && p.depth != nullptr, op,
                   "composite and depth output pointers");
  }
  return require(p.grad_composite != nullptr, op, "a grad_composite pointer");
}

template <typename T>
Status validate(const ImportanceSampleParams<T>& p) {
  const std::string op = "importance_sample";
  INNOUT_RETURN_IF_ERROR(require(p.num_rays >= 0 && p.num_importance >= 0, op,
                                 "num_rays >= 0 and num_importance >= 0"));
  INNOUT_RETURN_IF_ERROR(require(p.num_samples >= 4, op,
                                 "at least 4 coarse samples per ray (EG3D's pdf uses K-3 bins), "
                                 "got " +
                                     std::to_string(p.num_samples)));
  if (p.num_rays * p.num_importance == 0) return Status::Ok();
  return require(p.depths != nullptr && p.weights != nullptr && p.uniforms != nullptr &&
                     p.cdf != nullptr && p.samples != nullptr,
                 op, "depths, weights, uniforms, cdf workspace and samples pointers");
}

template <typename T>
Status validate(const StratifiedSampleParams<T>& p) {
  const std::string op = "stratified_sample";
  INNOUT_RETURN_IF_ERROR(require(p.num_rays >= 0, op, "num_rays >= 0"));
  INNOUT_RETURN_IF_ERROR(require(
      p.num_samples >= 2, op, "at least 2 samples per ray, got " + std::to_string(p.num_samples)));
  if (p.num_rays == 0) return Status::Ok();
  return require(p.near != nullptr && p.far != nullptr && p.depths != nullptr, op,
                 "near, far and depths pointers");
}

}  // namespace innout
