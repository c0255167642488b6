// Reader of exported scenes (format "innout-scene/1", written by `innout export-scene`): a
// safetensors file of float32 tensors plus string metadata. The layout is documented in
// python/innout/scene.py; validation mirrors its load_scene, so a file one accepts the other does.
//
// The reader is meant for untrusted files: every size and offset is checked before use, and no
// exception escapes (a bad file, or running out of memory, is reported as a Status).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "innout/common.h"

namespace innout {

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

// Parses and validates a scene held in memory (`size` bytes at `bytes`). On error `scene` is left
// empty and the status (kInvalidArgument) says what was expected.
Status parse_scene(const uint8_t* bytes, size_t size, Scene* scene);

// Reads the file at `path`, then parse_scene. Messages are prefixed with the path.
Status load_scene(const std::string& path, Scene* scene);

}  // namespace innout
