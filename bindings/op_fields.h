// The field table of each op's params struct (see field_table.h): the names Python passes are the
// struct's member names, and each field is read by the op directions that use it.
#pragma once

#include "field_table.h"
#include "innout/composite_march.h"
#include "innout/importance_sample.h"
#include "innout/stratified_sample.h"
#include "innout/triplane_sample.h"

namespace innout {
namespace bindings {

template <typename T>
const FieldTable<TriplaneSampleParams<T>>& triplane_sample_fields() {
  using P = TriplaneSampleParams<T>;
  static const FieldTable<P> table = FieldTable<P>()
                                         .buffer("planes", &P::planes, kBothDirections)
                                         .size("plane_batch", &P::plane_batch, kBothDirections)
                                         .size("channels", &P::channels, kBothDirections)
                                         .size("height", &P::height, kBothDirections)
                                         .size("width", &P::width, kBothDirections)
                                         .buffer("points", &P::points, kBothDirections)
                                         .size("batch", &P::batch, kBothDirections)
                                         .size("num_points", &P::num_points, kBothDirections)
                                         .real("box_warp", &P::box_warp, kBothDirections)
                                         .buffer("features", &P::features, kForward)
                                         .buffer("grad_features", &P::grad_features, kBackward)
                                         .buffer("grad_planes", &P::grad_planes, kBackward)
                                         .buffer("grad_points", &P::grad_points, kBackward);
  return table;
}

template <typename T>
const FieldTable<CompositeMarchParams<T>>& composite_march_fields() {
  using P = CompositeMarchParams<T>;
  static const FieldTable<P> table =
      FieldTable<P>()
          .size("num_rays", &P::num_rays, kBothDirections)
          .size("num_samples", &P::num_samples, kBothDirections)
          .size("channels", &P::channels, kBothDirections)
          .buffer("depths", &P::depths, kBothDirections)
          .buffer("density_in", &P::density_in, kBothDirections)
          .buffer("features_in", &P::features_in, kBothDirections)
          .buffer("density_out", &P::density_out, kBothDirections)
          .buffer("features_out", &P::features_out, kBothDirections)
          .buffer("blend", &P::blend, kBothDirections)
          .buffer("composite", &P::composite, kForward)
          .buffer("depth", &P::depth, kForward)
          // The forward writes these and the backward reads them.
          .buffer("weights", &P::weights, kBothDirections)
          .buffer("transmittance", &P::transmittance, kBothDirections)
          .buffer("interval_record", &P::interval_record, kBothDirections)
          .buffer("grad_composite", &P::grad_composite, kBackward)
          .buffer("grad_depth", &P::grad_depth, kBackward)
          .buffer("grad_weights", &P::grad_weights, kBackward)
          .buffer("grad_depths", &P::grad_depths, kBackward)
          .buffer("grad_density_in", &P::grad_density_in, kBackward)
          .buffer("grad_features_in", &P::grad_features_in, kBackward)
          .buffer("grad_density_out", &P::grad_density_out, kBackward)
          .buffer("grad_features_out", &P::grad_features_out, kBackward)
          .buffer("grad_blend", &P::grad_blend, kBackward);
  return table;
}

// The samplers have one direction; their fields are all "forward".
template <typename T>
const FieldTable<ImportanceSampleParams<T>>& importance_sample_fields() {
  using P = ImportanceSampleParams<T>;
  static const FieldTable<P> table = FieldTable<P>()
                                         .size("num_rays", &P::num_rays, kForward)
                                         .size("num_samples", &P::num_samples, kForward)
                                         .size("num_importance", &P::num_importance, kForward)
                                         .buffer("depths", &P::depths, kForward)
                                         .buffer("weights", &P::weights, kForward)
                                         .buffer("uniforms", &P::uniforms, kForward)
                                         .buffer("cdf", &P::cdf, kForward)
                                         .buffer("samples", &P::samples, kForward);
  return table;
}

template <typename T>
const FieldTable<StratifiedSampleParams<T>>& stratified_sample_fields() {
  using P = StratifiedSampleParams<T>;
  static const FieldTable<P> table = FieldTable<P>()
                                         .size("num_rays", &P::num_rays, kForward)
                                         .size("num_samples", &P::num_samples, kForward)
                                         .buffer("near", &P::near, kForward)
                                         .buffer("far", &P::far, kForward)
                                         .buffer("uniforms", &P::uniforms, kForward)
                                         .buffer("depths", &P::depths, kForward);
  return table;
}

}  // namespace bindings
}  // namespace innout
