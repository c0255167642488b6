// Reader of exported scenes: the safetensors container (header length, JSON header, byte buffer),
// then the checks of python/innout/scene.py's load_scene. Everything read from the file is
// untrusted: sizes and offsets are checked before use, arithmetic on them is overflow-checked,
// every size is bounded by the kScene* limits (scene.h) before anything is allocated, and the JSON
// parser bounds its recursion.
#include "innout/scene.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <new>
#include <utility>

#include "innout/validate.h"
#include "json_reader.h"

namespace innout {

int64_t SceneTensor::numel() const {
  // A zero anywhere makes it 0 even if the other dimensions multiply past int64 ([3, 2^63 - 1, 0,
  // 0] is a valid shape); the product saturates rather than overflowing for other inputs.
  for (int64_t d : shape) {
    if (d <= 0) return 0;
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / d) return std::numeric_limits<int64_t>::max();
    n *= d;
  }
  return n;
}

bool Scene::has_object() const { return tensors.count("object.planes") != 0; }

const SceneTensor* Scene::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

namespace {

using detail::Json;
using detail::json_index;
using detail::parse_json;
using detail::valid_utf8;

constexpr uint64_t kFloatBytes = 4;
const char* const kSceneFormat = "innout-scene/1";
const char* const kFaceKeys[] = {"face.planes", "face.hidden.weight", "face.hidden.bias",
                                 "face.output.weight", "face.output.bias"};
const char* const kObjectKeys[] = {"object.planes",        "object.code",
                                   "object.hidden.weight", "object.hidden.bias",
                                   "object.output.weight", "object.output.bias"};

// ---- Scene checks -------------------------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Whether `text` is a JSON integer literal without a sign: 0 | [1-9][0-9]* (settings are strings in
// the safetensors metadata; both readers take exactly this syntax for the integer ones).
bool json_integer_text(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), is_digit)) return false;
  return text == "0" || text[0] != '0';
}

// The value of a JSON number literal (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, no
// whitespace), rounded as Python's float() rounds it: infinity on overflow, zero on underflow.
// False for any other text.
bool parse_json_number(const std::string& text, double* out) {
  size_t i = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) ++i;
  const size_t int_begin = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == int_begin || (text[int_begin] == '0' && i - int_begin > 1)) return false;
  const size_t point = i;
  if (i < text.size() && text[i] == '.') {
    ++i;
    const size_t frac_begin = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == frac_begin) return false;
  }
  const size_t mantissa_end = i;
  long long exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exp_negative = text[i++] == '-';
    const size_t exp_begin = i;
    for (; i < text.size() && is_digit(text[i]); ++i) {
      if (exponent < 1000000000) exponent = exponent * 10 + (text[i] - '0');
    }
    if (i == exp_begin) return false;
    if (exp_negative) exponent = -exponent;
  }
  if (i != text.size()) return false;
  // from_chars reads the literal without its sign; positions below are relative to that.
  const std::string s = text.substr(int_begin);
  const size_t s_point = point - int_begin, s_mantissa_end = mantissa_end - int_begin;
  double v = 0;
  const auto result = std::from_chars(s.data(), s.data() + s.size(), v);
  if (result.ec == std::errc::result_out_of_range) {
    // Python gives infinity on overflow and zero on underflow: the decimal exponent of the first
    // non-zero digit says which.
    long long magnitude = 0;
    size_t k = 0;
    while (k < s_mantissa_end && (s[k] == '0' || s[k] == '.')) ++k;
    if (k == s_mantissa_end) {
      v = 0;
    } else {
      magnitude = k < s_point ? static_cast<long long>(s_point - k) - 1
                              : -static_cast<long long>(k - s_point);
      v = magnitude + exponent > 0 ? HUGE_VAL : 0.0;
    }
  } else if (result.ec != std::errc() || result.ptr != s.data() + s.size()) {
    return false;
  }
  *out = negative ? -v : v;
  return true;
}

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// Elements of `shape`, or false on overflow of the byte count (elements * 4).
bool byte_count(const std::vector<int64_t>& shape, uint64_t* elements, uint64_t* bytes) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    const uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return false;
    n *= u;
  }
  if (n > std::numeric_limits<uint64_t>::max() / kFloatBytes) return false;
  *elements = n;
  *bytes = n * kFloatBytes;
  return true;
}

bool host_is_little_endian() {
  const uint32_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

int64_t rows(const std::vector<int64_t>& shape) { return shape.empty() ? 0 : shape[0]; }

Status parse_impl(const uint8_t* bytes, size_t size, Scene* out) {
  if (!host_is_little_endian()) {
    return Status::Invalid("scene files can only be read on a little-endian host");
  }
  if (bytes == nullptr && size != 0) return Status::Invalid("scene bytes are null");
  if (size < 8) {
    return Status::Invalid("file too short (" + std::to_string(size) +
                           " bytes): a scene starts with an 8-byte header length");
  }
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes, 8);
  if (header_length > static_cast<uint64_t>(kSceneMaxHeaderBytes)) {
    return Status::Invalid("header length " + std::to_string(header_length) +
                           " exceeds the limit of " + std::to_string(kSceneMaxHeaderBytes) +
                           " bytes");
  }
  if (header_length > size - 8) {
    return Status::Invalid("header length " + std::to_string(header_length) +
                           " exceeds the file (" + std::to_string(size) + " bytes)");
  }
  const size_t header_size = static_cast<size_t>(header_length);
  const uint8_t* header = bytes + 8;
  const uint8_t* buffer = header + header_size;
  const uint64_t buffer_size = size - 8 - header_size;

  size_t bad = 0;
  if (!valid_utf8(header, header_size, &bad)) {
    return Status::Invalid("header is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  Json root;
  std::string json_error;
  if (!parse_json(reinterpret_cast<const char*>(header), header_size, &root, &json_error)) {
    return Status::Invalid("header is not valid JSON: " + json_error);
  }
  if (root.kind != Json::Kind::kObject) return Status::Invalid("header must be a JSON object");

  // ---- The safetensors container: entries, offsets inside the buffer, contiguous tensors.
  Scene scene;
  std::vector<Entry> entries;
  for (size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    const Json& v = root.items[i];
    if (name == "__metadata__") {
      if (v.kind == Json::Kind::kNull) continue;
      if (v.kind != Json::Kind::kObject) {
        return Status::Invalid("__metadata__ must be an object of strings");
      }
      for (size_t k = 0; k < v.keys.size(); ++k) {
        if (v.items[k].kind != Json::Kind::kString) {
          return Status::Invalid("__metadata__ entry " + quoted(v.keys[k]) + " must be a string");
        }
        scene.metadata[v.keys[k]] = v.items[k].text;
      }
      continue;
    }
    if (entries.size() == static_cast<size_t>(kSceneMaxTensors)) {
      return Status::Invalid("more than " + std::to_string(kSceneMaxTensors) +
                             " tensors in the header");
    }
    if (v.kind != Json::Kind::kObject) {
      return Status::Invalid("header entry of tensor " + name +
                             " must be an object with dtype, shape and data_offsets");
    }
    Entry entry;
    entry.name = name;
    const Json* dtype = v.member("dtype");
    if (dtype == nullptr || dtype->kind != Json::Kind::kString) {
      return Status::Invalid("dtype of " + name + " must be a string");
    }
    entry.dtype = dtype->text;
    const Json* shape = v.member("shape");
    if (shape == nullptr || shape->kind != Json::Kind::kArray) {
      return Status::Invalid("shape of " + name + " must be an array of non-negative integers");
    }
    if (shape->items.size() > static_cast<size_t>(kSceneMaxDims)) {
      return Status::Invalid("shape of " + name + " has " + std::to_string(shape->items.size()) +
                             " dimensions, at most " + std::to_string(kSceneMaxDims) +
                             " are supported");
    }
    for (const Json& d : shape->items) {
      int64_t n = 0;
      if (!json_index(d, &n)) {
        return Status::Invalid("shape of " + name + " must be an array of non-negative integers");
      }
      entry.shape.push_back(n);
    }
    const Json* offsets = v.member("data_offsets");
    int64_t begin = 0, end = 0;
    if (offsets == nullptr || offsets->kind != Json::Kind::kArray || offsets->items.size() != 2 ||
        !json_index(offsets->items[0], &begin) || !json_index(offsets->items[1], &end)) {
      return Status::Invalid("data_offsets of " + name +
                             " must be two non-negative integers [begin, end]");
    }
    entry.begin = static_cast<uint64_t>(begin);
    entry.end = static_cast<uint64_t>(end);
    if (entry.begin > entry.end || entry.end > buffer_size) {
      return Status::Invalid("data_offsets of " + name + " are [" + std::to_string(begin) + ", " +
                             std::to_string(end) +
                             "], expected begin <= end <= the byte buffer's size (" +
                             std::to_string(buffer_size) + ")");
    }
    entries.push_back(std::move(entry));
  }
  // safetensors (and so Python's load_scene) requires the tensors to tile the buffer exactly.
  std::vector<const Entry*> by_offset;
  for (const Entry& entry : entries) by_offset.push_back(&entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (const Entry* entry : by_offset) {
    if (entry->begin != covered) {
      return Status::Invalid("data of " + entry->name + " starts at byte " +
                             std::to_string(entry->begin) + " of the buffer, expected " +
                             std::to_string(covered) + " (tensors must be contiguous)");
    }
    covered = entry->end;
  }
  if (covered != buffer_size) {
    return Status::Invalid("the tensors cover " + std::to_string(covered) +
                           " bytes but the byte buffer holds " + std::to_string(buffer_size));
  }

  // ---- The scene: format, tensors present, dtypes, sizes, shapes.
  auto format = scene.metadata.find("format");
  if (format == scene.metadata.end()) {
    return Status::Invalid(std::string("header metadata lacks format, expected ") +
                           quoted(kSceneFormat));
  }
  if (format->second != kSceneFormat) {
    return Status::Invalid("format " + quoted(format->second) + ", expected " +
                           quoted(kSceneFormat));
  }
  auto has = [&](const std::string& name) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const Entry& e) { return e.name == name; });
  };
  std::vector<std::string> missing;
  if (!has("camera")) missing.push_back("camera");
  for (const char* key : kFaceKeys) {
    if (!has(key)) missing.push_back(key);
  }
  size_t object_count = 0;
  for (const char* key : kObjectKeys) object_count += has(key) ? 1 : 0;
  if (object_count != 0 && object_count != std::size(kObjectKeys)) {
    for (const char* key : kObjectKeys) {
      if (!has(key)) missing.push_back(key);
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& key : missing) list += (list.empty() ? "" : ", ") + key;
    return Status::Invalid((missing.size() == 1 ? "missing tensor " : "missing tensors ") + list +
                           (object_count != 0 && object_count != std::size(kObjectKeys)
                                ? " (the object.* tensors come all together or not at all)"
                                : ""));
  }
  for (const Entry& entry : entries) {
    if (entry.dtype != "F32") {
      return Status::Invalid("dtype of " + entry.name + " must be F32, got " + entry.dtype);
    }
  }
  for (const Entry& entry : entries) {
    uint64_t elements = 0, nbytes = 0;
    if (!byte_count(entry.shape, &elements, &nbytes)) {
      return Status::Invalid("shape " + shape_text(entry.shape) + " of " + entry.name +
                             " is too large");
    }
    if (entry.end - entry.begin != nbytes) {
      return Status::Invalid("data_offsets of " + entry.name + " span " +
                             std::to_string(entry.end - entry.begin) + " bytes, but shape " +
                             shape_text(entry.shape) + " of F32 needs " + std::to_string(nbytes));
    }
  }
  auto shape_of = [&](const std::string& name) -> const std::vector<int64_t>& {
    for (const Entry& e : entries) {
      if (e.name == name) return e.shape;
    }
    static const std::vector<int64_t> none;
    return none;
  };
  const std::vector<int64_t>& planes = shape_of("face.planes");
  if (planes.size() != 4 || planes[0] != 3) {
    return Status::Invalid("face.planes must have shape [3, C, H, W], got " + shape_text(planes));
  }
  // Every size within the limits: what the renderer allocates is then bounded too.
  auto within = [](const std::string& name, const std::string& what, int64_t value, int64_t low,
                   int64_t high) {
    if (low <= value && value <= high) return Status::Ok();
    return Status::Invalid(name + " has " + what + " " + std::to_string(value) + ", expected " +
                           std::to_string(low) + " to " + std::to_string(high));
  };
  const int64_t channels = planes[1];
  INNOUT_RETURN_IF_ERROR(within("face.planes", "C =", channels, 1, kSceneMaxChannels));
  INNOUT_RETURN_IF_ERROR(within("face.planes", "H =", planes[2], 1, kSceneMaxPlaneSize));
  INNOUT_RETURN_IF_ERROR(within("face.planes", "W =", planes[3], 1, kSceneMaxPlaneSize));
  const int64_t hidden = rows(shape_of("face.hidden.weight"));
  INNOUT_RETURN_IF_ERROR(
      within("face.hidden.weight", "rows (hidden width)", hidden, 1, kSceneMaxChannels));
  const int64_t outputs = rows(shape_of("face.output.weight"));  // 1 + F
  INNOUT_RETURN_IF_ERROR(
      within("face.output.weight", "rows (1 + F features)", outputs, 2, kSceneMaxChannels + 1));
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"camera", {25}},
      {"face.hidden.weight", {hidden, channels}},
      {"face.hidden.bias", {hidden}},
      {"face.output.weight", {outputs, hidden}},
      {"face.output.bias", {outputs}},
  };
  if (object_count != 0) {
    const std::vector<int64_t>& object_planes = shape_of("object.planes");
    if (object_planes.size() != 4 || object_planes[0] != 3 || object_planes[1] != channels) {
      return Status::Invalid("object.planes must have shape [3, " + std::to_string(channels) +
                             ", R, R], got " + shape_text(object_planes));
    }
    INNOUT_RETURN_IF_ERROR(
        within("object.planes", "height", object_planes[2], 1, kSceneMaxPlaneSize));
    INNOUT_RETURN_IF_ERROR(
        within("object.planes", "width", object_planes[3], 1, kSceneMaxPlaneSize));
    const std::vector<int64_t>& code = shape_of("object.code");
    if (code.size() != 1) {
      return Status::Invalid("object.code must have shape [K], got " + shape_text(code));
    }
    INNOUT_RETURN_IF_ERROR(within("object.code", "K =", code[0], 1, kSceneMaxChannels));
    const int64_t object_hidden = rows(shape_of("object.hidden.weight"));
    INNOUT_RETURN_IF_ERROR(
        within("object.hidden.weight", "rows (hidden width)", object_hidden, 1, kSceneMaxChannels));
    expected.push_back({"object.hidden.weight", {object_hidden, channels + code[0]}});
    expected.push_back({"object.hidden.bias", {object_hidden}});
    expected.push_back({"object.output.weight", {outputs + 1, object_hidden}});
    expected.push_back({"object.output.bias", {outputs + 1}});
  }
  for (const auto& [name, shape] : expected) {
    const std::vector<int64_t>& actual = shape_of(name);
    if (actual != shape) {
      return Status::Invalid(name + " must have shape " + shape_text(shape) + ", got " +
                             shape_text(actual));
    }
  }

  // ---- Settings.
  const char* const setting_keys[] = {"resolution", "coarse_samples", "fine_samples", "ray_start",
                                      "ray_end",    "box_warp",       "sigmoid_pad"};
  double values[7] = {};
  for (int i = 0; i < 7; ++i) {
    auto it = scene.metadata.find(setting_keys[i]);
    if (it == scene.metadata.end()) {
      return Status::Invalid(std::string("header metadata lacks ") + quoted(setting_keys[i]));
    }
    const std::string& text = it->second;
    if (i < 3) {
      // An integer: no fraction, exponent, sign or whitespace ("64.7" is not silently 64).
      if (!json_integer_text(text)) {
        return Status::Invalid(std::string(setting_keys[i]) +
                               " must be an integer (JSON syntax, e.g. \"64\"), got " +
                               quoted(text));
      }
    } else if (!parse_json_number(text, &values[i])) {
      return Status::Invalid(std::string(setting_keys[i]) +
                             " must be a number (JSON syntax, e.g. \"2.25\"), got " + quoted(text));
    }
  }
  int64_t counts[3] = {};
  const int64_t lows[3] = {1, 2, 0};
  const int64_t highs[3] = {kSceneMaxResolution, kSceneMaxSamples, kSceneMaxSamples};
  for (int i = 0; i < 3; ++i) {
    const std::string& text = scene.metadata[setting_keys[i]];
    // 19 digits or more are past every limit (and might not fit int64).
    int64_t n = std::numeric_limits<int64_t>::max();
    if (text.size() < 19) std::from_chars(text.data(), text.data() + text.size(), n);
    if (n < lows[i] || n > highs[i]) {
      return Status::Invalid(std::string(setting_keys[i]) + " must be in [" +
                             std::to_string(lows[i]) + ", " + std::to_string(highs[i]) + "], got " +
                             quoted(text));
    }
    counts[i] = n;
  }
  if (counts[2] > 0 && counts[1] < 4) {
    // EG3D's importance sampling draws from a pdf of K - 3 bins.
    return Status::Invalid("coarse_samples must be >= 4 when fine_samples > 0, got " +
                           std::to_string(counts[1]));
  }
  for (int i = 3; i < 7; ++i) {
    if (!std::isfinite(values[i])) {
      return Status::Invalid(std::string("settings contain NaN or infinity: ") + setting_keys[i] +
                             " is " + quoted(scene.metadata[setting_keys[i]]));
    }
    const double limit = std::numeric_limits<float>::max();
    if (std::fabs(values[i]) > limit) {
      return Status::Invalid(std::string(setting_keys[i]) + " is out of the float32 range");
    }
  }
  const double ray_start = values[3], ray_end = values[4], box_warp = values[5];
  if (!(0 < ray_start && ray_start < ray_end) || !(box_warp > 0)) {
    return Status::Invalid("0 < ray_start < ray_end and box_warp > 0 are required, got ray_start " +
                           scene.metadata["ray_start"] + ", ray_end " + scene.metadata["ray_end"] +
                           ", box_warp " + scene.metadata["box_warp"]);
  }
  scene.resolution = counts[0];
  scene.coarse_samples = counts[1];
  scene.fine_samples = counts[2];
  scene.ray_start = static_cast<float>(ray_start);
  scene.ray_end = static_cast<float>(ray_end);
  scene.box_warp = static_cast<float>(box_warp);
  scene.sigmoid_pad = static_cast<float>(values[6]);
  // The renderers compute in float32: the order must survive the rounding.
  if (!(0 < scene.ray_start && scene.ray_start < scene.ray_end) || !(scene.box_warp > 0)) {
    return Status::Invalid("ray_start < ray_end and box_warp > 0 must hold in float32");
  }

  // ---- Tensor data (memcpy: the buffer has no alignment), then finiteness. Every size is now
  // bounded and matches the file's own bytes.
  for (const Entry& entry : entries) {
    SceneTensor tensor;
    tensor.shape = entry.shape;
    const size_t count = static_cast<size_t>((entry.end - entry.begin) / kFloatBytes);
    tensor.data.resize(count);
    if (count != 0) {
      std::memcpy(tensor.data.data(), buffer + entry.begin, count * sizeof(float));
    }
    for (size_t i = 0; i < count; ++i) {
      if (!std::isfinite(tensor.data[i])) {
        return Status::Invalid(entry.name + " contains NaN or infinity (element " +
                               std::to_string(i) + ")");
      }
    }
    scene.tensors.emplace(entry.name, std::move(tensor));
  }
  const Status camera = check_camera(scene.find("camera")->data.data());
  if (!camera.ok()) return Status::Invalid("camera is degenerate: " + camera.message);
  *out = std::move(scene);
  return Status::Ok();
}

}  // namespace

Status check_camera(const float* label) {
  if (label == nullptr) return Status::Invalid("expected 25 floats, got a null pointer");
  double v[25];
  for (int i = 0; i < 25; ++i) {
    v[i] = static_cast<double>(label[i]);
    if (!std::isfinite(v[i])) {
      return Status::Invalid("expected finite values, element " + std::to_string(i) + " is " +
                             std::to_string(v[i]));
    }
  }
  const double* m = v;
  const double* k = v + 16;
  const double tol = kSceneCameraTolerance;
  // Double precision and the order of operations of python/innout/scene.py's camera_problem, so
  // that both readers decide alike even next to the tolerance.
  double error = 0.0;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const double dot =
          m[i * 4] * m[j * 4] + m[i * 4 + 1] * m[j * 4 + 1] + m[i * 4 + 2] * m[j * 4 + 2];
      error = std::max(error, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  }
  if (error > tol) {
    return Status::Invalid(
        "expected a cam2world whose rotation (top-left 3x3) is orthonormal to within 0.001, got "
        "|R R^T - I| = " +
        std::to_string(error));
  }
  if (std::max({std::fabs(m[12]), std::fabs(m[13]), std::fabs(m[14]), std::fabs(m[15] - 1.0)}) >
      tol) {
    return Status::Invalid("expected cam2world's last row [0, 0, 0, 1]");
  }
  if (!(k[0] >= kSceneMinFocalLength && k[4] >= kSceneMinFocalLength)) {
    return Status::Invalid("expected normalised focal lengths fx, fy >= 0.001, got fx=" +
                           std::to_string(k[0]) + " fy=" + std::to_string(k[4]));
  }
  if (std::max({std::fabs(k[3]), std::fabs(k[6]), std::fabs(k[7]), std::fabs(k[8] - 1.0)}) > tol) {
    return Status::Invalid("expected intrinsics rows [0, fy, cy] and [0, 0, 1]");
  }
  return Status::Ok();
}

Status parse_scene(const uint8_t* bytes, size_t size, Scene* scene) {
  if (scene == nullptr) return Status::Invalid("scene must not be null");
  try {
    *scene = Scene();
    return parse_impl(bytes, size, scene);
  } catch (const std::bad_alloc&) {
    *scene = Scene();
    return Status::Invalid("out of memory while reading the scene");
  } catch (const std::exception& error) {
    *scene = Scene();
    return Status::Invalid(std::string("cannot read the scene: ") + error.what());
  } catch (...) {
    *scene = Scene();
    return Status::Invalid("cannot read the scene");
  }
}

Status load_scene(const std::string& path, Scene* scene) {
  if (scene == nullptr) return Status::Invalid("scene must not be null");
  try {
    *scene = Scene();
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
      const int error = errno;
      return Status::Invalid(path + ": cannot open the scene file (" + std::strerror(error) + ")");
    }
    std::vector<uint8_t> bytes;
    int error = 0;
    errno = 0;
    try {
      uint8_t chunk[1 << 16];
      while (true) {
        const size_t n = std::fread(chunk, 1, sizeof(chunk), file);
        bytes.insert(bytes.end(), chunk, chunk + n);
        if (n < sizeof(chunk)) {
          if (std::ferror(file)) error = errno != 0 ? errno : EIO;
          break;
        }
      }
    } catch (...) {
      std::fclose(file);
      throw;
    }
    std::fclose(file);
    if (error != 0) {
      return Status::Invalid(path + ": cannot read the scene file (" + std::strerror(error) + ")");
    }
    Status status = parse_scene(bytes.data(), bytes.size(), scene);
    if (!status.ok()) status.message = path + ": " + status.message;
    return status;
  } catch (const std::bad_alloc&) {
    *scene = Scene();
    return Status::Invalid(path + ": out of memory while reading the scene file");
  } catch (const std::exception& error) {
    *scene = Scene();
    return Status::Invalid(path + ": cannot read the scene file (" + error.what() + ")");
  } catch (...) {
    *scene = Scene();
    return Status::Invalid(path + ": cannot read the scene file");
  }
}

}  // namespace innout
