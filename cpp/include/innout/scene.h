// Reader of exported scenes (format "innout-scene/1", written by `innout export-scene`): a
// safetensors file of float32 tensors plus string metadata. The layout is documented in
// python/innout/scene.py; validation mirrors its load_scene, so a file one accepts the other does.
//
// The reader is meant for untrusted files: every size and offset is checked before use, every size
// is bounded by the limits below before anything is allocated, and no exception escapes (a bad
// file, or running out of memory, is reported as a Status).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "innout/common.h"

namespace innout {

// ---- Limits of the reader ----------------------------------------------------------------------
// A file beyond any of them is refused before anything is allocated, so that a damaged or hostile
// file costs at most its own size in memory and a render of it stays feasible. python/innout/
// scene.py has the same values (MAX_HEADER_BYTES, ...); the tests check that they agree.
constexpr int64_t kSceneMaxHeaderBytes = 1048576;  // the JSON header (exported ones: < 4 KiB)
constexpr int64_t kSceneMaxTensors = 64;           // tensor entries (a scene has 6, or 12)
constexpr int64_t kSceneMaxDims = 8;               // dimensions of one tensor
constexpr int64_t kSceneMaxJsonDepth = 64;         // nesting in the header, its object included
constexpr int64_t kSceneMaxResolution = 4096;      // rendering resolution (raw image side)
constexpr int64_t kSceneMaxSamples = 1024;         // coarse_samples, and fine_samples, per ray
constexpr int64_t kSceneMaxPlaneSize = 2048;       // height and width of a tri-plane
constexpr int64_t kSceneMaxChannels = 1024;        // plane channels, hidden widths, F, code size K
constexpr double kSceneMinFocalLength = 0.001;     // normalised fx, fy (a 179.9 degree view)
constexpr double kSceneCameraTolerance = 0.001;    // orthonormal rotation, fixed label entries

// One float32 tensor, C-contiguous: `data` holds numel() values.
struct SceneTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const;
};

struct Scene {
  std::map<std::string, SceneTensor> tensors;   // by name: "camera", "face.planes", ...
  std::map<std::string, std::string> metadata;  // every __metadata__ entry, settings included
  int64_t resolution = 0, coarse_samples = 0, fine_samples = 0;
  float ray_start = 0, ray_end = 0, box_warp = 0, sigmoid_pad = 0;

  bool has_object() const;  // whether the object.* tensors are present
  const SceneTensor* find(const std::string& name) const;  // nullptr if absent
};

// Whether 25 floats are a usable EG3D camera label: finite, a cam2world whose rotation is
// orthonormal and whose last row is [0, 0, 0, 1] (to kSceneCameraTolerance), focal lengths fx, fy
// >= kSceneMinFocalLength and intrinsics rows [0, fy, cy], [0, 0, 1]. Any other renders NaN (or a
// sheared, mirrored image) without another error. parse_scene checks the scene's camera with it.
Status check_camera(const float* label);

// Parses and validates a scene held in memory (`size` bytes at `bytes`). On error `scene` is left
// empty and the status (kInvalidArgument) says what was expected.
Status parse_scene(const uint8_t* bytes, size_t size, Scene* scene);

// Reads the file at `path`, then parse_scene. Messages are prefixed with the path.
Status load_scene(const std::string& path, Scene* scene);

}  // namespace innout
