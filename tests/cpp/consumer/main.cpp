// Marches one ray through an installed innout: proves the package's headers and library link.
#include <cstdio>
#include <vector>

#include "innout/cpu.h"
#include "innout/version.h"

int main() {
  const int64_t samples = 4, channels = 3;
  std::vector<float> depths = {2.0f, 2.5f, 3.0f, 3.5f}, density(samples, 10.0f);
  std::vector<float> features(samples * channels, 1.0f), composite(channels), weights(samples - 1),
      transmittance(samples - 1);
  float depth = 0.0f;
  innout::CompositeMarchParams<float> params;
  params.num_rays = 1;
  params.num_samples = samples;
  params.channels = channels;
  params.depths = depths.data();
  params.density_in = density.data();
  params.features_in = features.data();
  params.composite = composite.data();
  params.depth = &depth;
  params.weights = weights.data();
  params.transmittance = transmittance.data();
  const innout::Status status = innout::cpu::composite_march_forward(params, {});
  if (!status.ok()) {
    std::printf("error: %s\n", status.message.c_str());
    return 1;
  }
  // A dense white ray composites to (almost exactly) 2 * 1 - 1 = 1 in every channel.
  std::printf("innout %s: composite %.4f depth %.4f\n", INNOUT_VERSION, composite[0], depth);
  return composite[0] > 0.99f && depth > 2.0f && depth < 2.5f ? 0 : 1;
}
