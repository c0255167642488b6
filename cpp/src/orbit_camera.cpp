// orbit_camera (innout.h): a camera label rotated about the vertical axis through a pivot.
#include <cmath>

#include "innout/innout.h"

namespace innout {

CameraLabel orbit_camera(const CameraLabel& camera, float yaw, const float pivot[3]) {
  const float c = std::cos(yaw), s = std::sin(yaw);
  // Rotation about +y: x' = c x + s z, z' = -s x + c z.
  const float rotation[3][3] = {{c, 0.0f, s}, {0.0f, 1.0f, 0.0f}, {-s, 0.0f, c}};
  CameraLabel out = camera;
  const float* m = camera.values;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      float sum = 0.0f;
      for (int k = 0; k < 3; ++k) sum += rotation[i][k] * m[k * 4 + j];
      out.values[i * 4 + j] = sum;
    }
    float position = pivot[i];
    for (int k = 0; k < 3; ++k) position += rotation[i][k] * (m[k * 4 + 3] - pivot[k]);
    out.values[i * 4 + 3] = position;
  }
  return out;
}

}  // namespace innout
