// C++ tests of the scene reader (innout/scene.h): valid scenes with and without the object, and
// every kind of bad file refused with a telling message and without reading out of bounds (run
// under -DINNOUT_SANITIZE=ON too). Scenes are written in memory by the small writer below.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "innout/innout.h"
#include "innout/scene.h"

namespace {

using innout_test::check;
using innout_test::failures;

// ---- A tiny scene writer ---------------------------------------------------------------------

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::string dtype = "F32";
  std::string offsets;  // raw JSON for data_offsets; empty: where the values are written
};

struct SceneSpec {
  std::vector<TensorSpec> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string extra;  // raw JSON members appended to the header object (", \"k\": v")

  TensorSpec* tensor(const std::string& name) {
    for (auto& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  void erase_tensor(const std::string& name) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].name == name) tensors.erase(tensors.begin() + static_cast<long>(i));
    }
  }
  void set_metadata(const std::string& key, const std::string& value) {
    for (auto& kv : metadata) {
      if (kv.first == key) {
        kv.second = value;
        return;
      }
    }
    metadata.emplace_back(key, value);
  }
  void erase_metadata(const std::string& key) {
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (metadata[i].first == key) metadata.erase(metadata.begin() + static_cast<long>(i));
    }
  }
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// The file: 8-byte little-endian header length, the header, the buffer.
std::vector<uint8_t> file_bytes(const std::string& header, const std::string& buffer) {
  std::vector<uint8_t> bytes(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), buffer.begin(), buffer.end());
  return bytes;
}

// The scene as safetensors writes it: metadata first, tensors back to back in the buffer.
std::vector<uint8_t> write_scene(const SceneSpec& spec, bool pad = true) {
  std::string header = "{\"__metadata__\":{";
  for (size_t i = 0; i < spec.metadata.size(); ++i) {
    if (i) header += ",";
    header += json_string(spec.metadata[i].first) + ":" + json_string(spec.metadata[i].second);
  }
  header += "}";
  std::string buffer;
  for (const TensorSpec& t : spec.tensors) {
    const size_t begin = buffer.size();
    buffer.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
    header += "," + json_string(t.name) + ":{\"dtype\":" + json_string(t.dtype) + ",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":";
    header += t.offsets.empty()
                  ? "[" + std::to_string(begin) + "," + std::to_string(buffer.size()) + "]"
                  : t.offsets;
    header += "}";
  }
  header += spec.extra + "}";
  if (pad) {
    while (header.size() % 8) header += ' ';  // as safetensors pads it
  }
  return file_bytes(header, buffer);
}

TensorSpec make_tensor(const std::string& name, std::vector<int64_t> shape, float seed) {
  TensorSpec t;
  t.name = name;
  t.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t d : t.shape) n = d == 0 ? 0 : n;  // zero-size tensors may have huge other dims
  for (int64_t d : t.shape) n = n == 0 ? 0 : n * d;
  for (int64_t i = 0; i < n; ++i) t.values.push_back(seed + 0.25f * static_cast<float>(i));
  return t;
}

// C = 2 channels, 3 x 4 face planes, hidden 5, F = 3; object: R = 2, K = 3, object hidden 4.
constexpr int64_t kC = 2, kH = 3, kW = 4, kHidden = 5, kF = 3, kR = 2, kK = 3, kOh = 4;

// EG3D's frontal FFHQ camera: cam2world (a rotation by pi about x, 2.7 units out on +z), then the
// normalised intrinsics.
std::vector<float> frontal_camera() {
  return {1, 0, 0, 0,       0, -1,   0, 0,       0,    0, -1, 2.7f, 0,
          0, 0, 1, 4.2647f, 0, 0.5f, 0, 4.2647f, 0.5f, 0, 0,  1};
}

SceneSpec valid_spec(bool object) {
  SceneSpec s;
  s.tensors.push_back(make_tensor("camera", {25}, 1.0f));
  s.tensors.back().values = frontal_camera();
  s.tensors.push_back(make_tensor("face.planes", {3, kC, kH, kW}, -2.0f));
  s.tensors.push_back(make_tensor("face.hidden.weight", {kHidden, kC}, 3.0f));
  s.tensors.push_back(make_tensor("face.hidden.bias", {kHidden}, 4.0f));
  s.tensors.push_back(make_tensor("face.output.weight", {1 + kF, kHidden}, 5.0f));
  s.tensors.push_back(make_tensor("face.output.bias", {1 + kF}, 6.0f));
  if (object) {
    s.tensors.push_back(make_tensor("object.planes", {3, kC, kR, kR}, 7.0f));
    s.tensors.push_back(make_tensor("object.code", {kK}, 8.0f));
    s.tensors.push_back(make_tensor("object.hidden.weight", {kOh, kC + kK}, 9.0f));
    s.tensors.push_back(make_tensor("object.hidden.bias", {kOh}, 10.0f));
    s.tensors.push_back(make_tensor("object.output.weight", {2 + kF, kOh}, 11.0f));
    s.tensors.push_back(make_tensor("object.output.bias", {2 + kF}, 12.0f));
  }
  s.metadata = {{"format", "innout-scene/1"},
                {"resolution", "64"},
                {"coarse_samples", "48"},
                {"fine_samples", "12"},
                {"ray_start", "2.25"},
                {"ray_end", "3.3"},
                {"box_warp", "1"},
                {"sigmoid_pad", "0.001"},
                {"method", "innout"}};
  return s;
}

// Parses a copy of exactly `bytes` (so that AddressSanitizer sees any read past the end).
innout::Status parse(const std::vector<uint8_t>& bytes, innout::Scene* scene) {
  std::vector<uint8_t> copy(bytes);
  return innout::parse_scene(copy.empty() ? nullptr : copy.data(), copy.size(), scene);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The bytes must be refused with a message containing `part`.
void expect_refused(const std::vector<uint8_t>& bytes, const std::string& part,
                    const std::string& what) {
  innout::Scene scene;
  const innout::Status status = parse(bytes, &scene);
  const bool ok = !status.ok() && status.code == innout::StatusCode::kInvalidArgument &&
                  contains(status.message, part) && scene.tensors.empty();
  check(ok, what + ": expected an error containing '" + part + "', got " +
                (status.ok() ? std::string("OK") : "'" + status.message + "'"));
}

void expect_refused(const SceneSpec& spec, const std::string& part, const std::string& what) {
  expect_refused(write_scene(spec), part, what);
}

// ---- Valid scenes ------------------------------------------------------------------------------

void check_tensor(const innout::Scene& scene, const TensorSpec& spec) {
  const innout::SceneTensor* t = scene.find(spec.name);
  check(t != nullptr, spec.name + " present");
  if (t == nullptr) return;
  check(t->shape == spec.shape, spec.name + " shape");
  check(t->numel() == static_cast<int64_t>(spec.values.size()), spec.name + " numel");
  check(t->data == spec.values, spec.name + " values");
}

void valid_scene(bool object) {
  const std::string what = object ? "scene with object" : "scene without object";
  const SceneSpec spec = valid_spec(object);
  innout::Scene scene;
  const innout::Status status = parse(write_scene(spec), &scene);
  check(status.ok(), what + " parses: " + status.message);
  if (!status.ok()) return;
  check(scene.tensors.size() == spec.tensors.size(), what + ": tensor count");
  for (const TensorSpec& t : spec.tensors) check_tensor(scene, t);
  check(scene.has_object() == object, what + ": has_object");
  check(scene.find("object.code") == (object ? scene.find("object.code") : nullptr),
        what + ": find of an absent tensor");
  check(scene.find("nope") == nullptr, what + ": find returns nullptr");
  check(scene.resolution == 64 && scene.coarse_samples == 48 && scene.fine_samples == 12,
        what + ": integer settings");
  check(scene.ray_start == 2.25f && scene.ray_end == 3.3f && scene.box_warp == 1.0f &&
            scene.sigmoid_pad == 0.001f,
        what + ": float settings");
  check(scene.metadata.size() == 9 && scene.metadata.at("method") == "innout" &&
            scene.metadata.at("format") == "innout-scene/1" &&
            scene.metadata.at("ray_start") == "2.25",
        what + ": metadata");
  if (object) {
    const innout::SceneTensor* w = scene.find("object.hidden.weight");
    check(w != nullptr && w->shape == std::vector<int64_t>({kOh, kC + kK}),
          "object.hidden.weight is [oh, C + K]");
  }
}

// Floats at odd addresses (no header padding, buffer at an odd offset of the allocation).
void unaligned_buffer() {
  const std::vector<uint8_t> bytes = write_scene(valid_spec(true), /*pad=*/false);
  std::vector<uint8_t> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  innout::Scene scene;
  const innout::Status status = innout::parse_scene(shifted.data() + 1, bytes.size(), &scene);
  check(status.ok(), "unaligned buffer parses: " + status.message);
  if (status.ok()) check_tensor(scene, valid_spec(true).tensors[1]);
}

// Settings are metadata strings holding a JSON number; the integer ones a JSON integer, so that
// "64.7" is refused instead of being truncated to 64.
void json_number_settings() {
  SceneSpec spec = valid_spec(false);
  spec.set_metadata("resolution", "128");
  spec.set_metadata("coarse_samples", "49");
  spec.set_metadata("fine_samples", "0");
  spec.set_metadata("ray_start", "5e-1");
  spec.set_metadata("ray_end", "1E1");
  spec.set_metadata("box_warp", "2.0");
  spec.set_metadata("sigmoid_pad", "1e-400");  // underflows to 0, as Python's float() does
  innout::Scene scene;
  const innout::Status status = parse(write_scene(spec), &scene);
  check(status.ok(), "JSON number settings parse: " + status.message);
  check(scene.resolution == 128 && scene.coarse_samples == 49 && scene.fine_samples == 0 &&
            scene.ray_start == 0.5f && scene.ray_end == 10.0f && scene.box_warp == 2.0f &&
            scene.sigmoid_pad == 0.0f,
        "JSON number settings values");
  for (const char* text : {"64.7", "64.0", "6.4e1", " 64", "64 ", "+64", "064", "-0", "-5", "1_28",
                           "true", "\"64\"", "", "0x40", "６４"}) {
    spec = valid_spec(false);
    spec.set_metadata("resolution", text);
    expect_refused(spec, "resolution must be an integer (JSON syntax",
                   std::string("resolution ") + text);
  }
  for (const char* text : {" 2.25", "+2.25", ".5", "2.", "1_0", "inf", "Infinity", "nan", "0x10",
                           "1.0.0", "1e", "01.5", "", "true"}) {
    spec = valid_spec(false);
    spec.set_metadata("ray_end", text);
    expect_refused(spec, "ray_end must be a number (JSON syntax", std::string("ray_end ") + text);
  }
}

// Escapes in header strings, incl. a surrogate pair; padding with spaces after the object.
void json_escapes() {
  const SceneSpec spec = valid_spec(false);
  const std::vector<uint8_t> bytes = write_scene(spec);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  const std::string buffer(bytes.begin() + 8 + static_cast<long>(n), bytes.end());
  const std::string from = "\"method\":\"innout\"";
  check(header.find(from) != std::string::npos, "writer puts method in the header");
  if (header.find(from) == std::string::npos) return;
  header.replace(header.find(from), from.size(),
                 "\"m\\u00e9thod\" : \"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\\u20ac\"");
  header += "\n\t  ";
  innout::Scene scene;
  const innout::Status status = parse(file_bytes(header, buffer), &scene);
  check(status.ok(), "escaped strings parse: " + status.message);
  if (status.ok()) {
    check(scene.metadata.count("m\xc3\xa9thod") == 1 &&
              scene.metadata.at("m\xc3\xa9thod") ==
                  "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac",
          "escaped strings decode to UTF-8");
  }
  std::string lone = header;
  lone.replace(lone.find("\\ud83d\\ude00"), 12, "\\ud83dxxxxxx");
  expect_refused(file_bytes(lone, buffer), "surrogate", "lone surrogate");
}

void load_from_file() {
  const std::vector<uint8_t> bytes = write_scene(valid_spec(true));
  const std::string path = "test_scene_tmp.safetensors";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  check(f != nullptr, "temporary file opens");
  if (f == nullptr) return;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  innout::Scene scene;
  innout::Status status = innout::load_scene(path, &scene);
  check(status.ok() && scene.has_object() && scene.tensors.size() == 12,
        "load_scene reads a file: " + status.message);
  std::remove(path.c_str());

  const std::string missing = "/nonexistent-innout-dir/missing_scene.safetensors";
  status = innout::load_scene(missing, &scene);
  check(!status.ok() && status.code == innout::StatusCode::kInvalidArgument &&
            contains(status.message, missing) && scene.tensors.empty(),
        "load_scene of a missing path names it: " + status.message);
  status = innout::load_scene(".", &scene);
  check(!status.ok() && contains(status.message, "."), "load_scene of a directory is refused");
}

// ---- Bad files ----------------------------------------------------------------------------------

void truncated_files() {
  const std::vector<uint8_t> bytes = write_scene(valid_spec(true));
  int accepted = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    innout::Scene scene;
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    if (parse(prefix, &scene).ok()) ++accepted;
  }
  check(accepted == 0, "every truncation is refused (" + std::to_string(accepted) + " accepted)");
  expect_refused(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 5), "too short",
                 "5-byte file");
  expect_refused(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), "byte buffer",
                 "last byte missing");
}

void huge_header_length() {
  std::vector<uint8_t> bytes = write_scene(valid_spec(false));
  const uint64_t huge = uint64_t(1) << 40;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(huge >> (8 * i));
  expect_refused(bytes, "header length 1099511627776 exceeds the limit of 1048576 bytes",
                 "huge header length");
  for (int i = 0; i < 8; ++i) bytes[i] = 0xFF;
  expect_refused(bytes, "exceeds the limit", "header length 2^64 - 1");
  const uint64_t within = innout::kSceneMaxHeaderBytes;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(within >> (8 * i));
  expect_refused(
      bytes, "header length 1048576 exceeds the file (" + std::to_string(bytes.size()) + " bytes)",
      "header length at the limit, past the end");
}

void header_not_json() {
  expect_refused(file_bytes("{not json}", ""), "not valid JSON", "header not JSON");
  expect_refused(file_bytes("{} x", ""), "not valid JSON", "trailing garbage");
  expect_refused(file_bytes("{\"a\":01}", ""), "not valid JSON", "leading zero");
  expect_refused(file_bytes("{\"a\":\"\\q\"}", ""), "not valid JSON", "bad escape");
  expect_refused(file_bytes("{\"a\":\"x", ""), "not valid JSON", "unterminated string");
  expect_refused(file_bytes("{\"a\":[1,]}", ""), "not valid JSON", "trailing comma");
  expect_refused(file_bytes("{\"a\":1,\"a\":2}", ""), "duplicate key", "duplicate key");
  expect_refused(file_bytes("{\"a\":\"\xff\"}", ""), "UTF-8", "invalid UTF-8");
  expect_refused(file_bytes("", ""), "not valid JSON", "empty header");
}

void header_not_object() {
  expect_refused(file_bytes("[1, 2]", ""), "must be a JSON object", "JSON array header");
  expect_refused(file_bytes("\"scene\"", ""), "must be a JSON object", "JSON string header");
  SceneSpec spec = valid_spec(false);
  spec.extra = ",\"x\":3";
  expect_refused(spec, "tensor x must be an object", "tensor entry not an object");
  spec.extra = ",\"__metadata__x\":{\"dtype\":\"F32\",\"shape\":[1]}";
  expect_refused(spec, "data_offsets of __metadata__x must be two", "entry without offsets");
}

void wrong_dtype() {
  SceneSpec spec = valid_spec(false);
  spec.tensor("camera")->dtype = "F64";
  expect_refused(spec, "dtype of camera must be F32, got F64", "wrong dtype");
}

void wrong_shape() {
  SceneSpec spec = valid_spec(false);
  spec.tensor("face.planes")->shape = {2, kC, kH, 6};  // same number of values
  expect_refused(spec, "face.planes must have shape [3, C, H, W], got [2, 2, 3, 6]",
                 "wrong face.planes shape");
  spec = valid_spec(false);
  *spec.tensor("face.hidden.bias") = make_tensor("face.hidden.bias", {kHidden - 1}, 0.0f);
  expect_refused(spec, "face.hidden.bias must have shape [5], got [4]", "wrong bias length");
  spec = valid_spec(false);
  *spec.tensor("camera") = make_tensor("camera", {5, 5}, 0.0f);
  expect_refused(spec, "camera must have shape [25], got [5, 5]", "camera [5, 5]");
  spec = valid_spec(true);
  *spec.tensor("object.planes") = make_tensor("object.planes", {3, kC + 1, kR, kR}, 0.0f);
  expect_refused(spec, "object.planes must have shape [3, 2, R, R], got [3, 3, 2, 2]",
                 "object planes with other channels");
  spec = valid_spec(true);
  *spec.tensor("object.hidden.weight") = make_tensor("object.hidden.weight", {kOh, kC}, 0.0f);
  expect_refused(spec, "object.hidden.weight must have shape [4, 5], got [4, 2]",
                 "object hidden weight without the code");
  spec = valid_spec(false);
  spec.tensors.push_back(make_tensor("extra", {1, 1, 1, 1, 1, 1, 1, 1, 1}, 0.0f));
  expect_refused(spec, "at most 8", "nine dimensions");
  spec = valid_spec(false);
  spec.tensor("camera")->shape = {25, -1};
  expect_refused(spec, "shape of camera must be an array of non-negative integers",
                 "negative dimension");
  // Shapes whose element or byte count overflows 64 bits.
  spec = valid_spec(false);
  spec.tensors.push_back(make_tensor("extra", {}, 0.0f));
  spec.tensors.back().shape = {int64_t(1) << 62, int64_t(1) << 62};
  expect_refused(spec, "is too large", "element count overflow");
  spec.tensors.back().shape = {std::numeric_limits<int64_t>::max()};
  expect_refused(spec, "is too large", "byte count overflow");
  // Element counts are multiplied left to right with overflow checks, as safetensors does, so
  // [3, 2^63 - 1, 0, 0] is refused although it has no elements.
  const int64_t max = std::numeric_limits<int64_t>::max();
  spec = valid_spec(false);
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, max, 0, 0}, 0.0f);
  expect_refused(spec, "is too large", "[3, 2^63 - 1, 0, 0] planes");
  // [3, C, 0, 0] with 3 C in range is a consistent file, but neither empty planes nor C beyond
  // kSceneMaxChannels can be rendered.
  const int64_t channels = max / 3;
  spec = valid_spec(false);
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, channels, 0, 0}, 0.0f);
  *spec.tensor("face.hidden.weight") = make_tensor("face.hidden.weight", {0, channels}, 0.0f);
  *spec.tensor("face.hidden.bias") = make_tensor("face.hidden.bias", {0}, 0.0f);
  *spec.tensor("face.output.weight") = make_tensor("face.output.weight", {1 + kF, 0}, 0.0f);
  expect_refused(spec, "face.planes has C = 3074457345618258602, expected 1 to 1024",
                 "zero-size planes with (2^63 - 1) / 3 channels");
  spec = valid_spec(false);
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, kC, 0, kW}, 0.0f);
  expect_refused(spec, "face.planes has H = 0, expected 1 to 2048", "planes without rows");
  innout::SceneTensor t;
  t.shape = {3, max, 0, 0};
  check(t.numel() == 0, "numel of [3, 2^63 - 1, 0, 0] is 0");
  t.shape = {max, 3};
  check(t.numel() == max, "numel saturates");
  t.shape = {};
  check(t.numel() == 1, "numel of a scalar is 1");
}

void missing_tensors() {
  SceneSpec spec = valid_spec(false);
  spec.erase_tensor("face.output.bias");
  expect_refused(spec, "missing tensor face.output.bias", "missing face tensor");
  spec = valid_spec(false);
  spec.erase_tensor("camera");
  spec.erase_tensor("face.planes");
  expect_refused(spec, "missing tensors camera, face.planes", "two missing tensors");
  spec = valid_spec(true);
  spec.erase_tensor("object.code");
  expect_refused(spec, "missing tensor object.code", "only some object tensors");
  spec = valid_spec(false);
  spec.tensors.push_back(make_tensor("object.planes", {3, kC, kR, kR}, 0.0f));
  expect_refused(spec, "all together or not at all", "object planes alone");
}

void bad_offsets() {
  SceneSpec spec = valid_spec(false);
  const size_t total =
      4 * (25 + 3 * kC * kH * kW + kHidden * kC + kHidden + (1 + kF) * kHidden + (1 + kF));
  const size_t last = total - 4 * (1 + kF);
  spec.tensor("face.output.bias")->offsets =
      "[" + std::to_string(last) + "," + std::to_string(total + 4) + "]";
  expect_refused(spec, "data_offsets of face.output.bias are", "end past the buffer");
  spec.tensor("face.output.bias")->offsets =
      "[" + std::to_string(total) + "," + std::to_string(last) + "]";
  expect_refused(spec, "begin <= end", "begin after end");
  spec.tensor("face.output.bias")->offsets = "[-16, " + std::to_string(total) + "]";
  expect_refused(spec, "two non-negative integers", "negative begin");
  spec.tensor("face.output.bias")->offsets = "[0, 99999999999999999999]";
  expect_refused(spec, "two non-negative integers", "offset beyond int64");
  spec.tensor("face.output.bias")->offsets = "[0, 16, 32]";
  expect_refused(spec, "two non-negative integers", "three offsets");
  spec.tensor("face.output.bias")->offsets = "[0.0, 16]";
  expect_refused(spec, "two non-negative integers", "fractional offset");
  // Overlapping tensors: the bias claims the camera's bytes (safetensors refuses this too).
  spec.tensor("face.output.bias")->offsets = "[0, 16]";
  expect_refused(spec, "contiguous", "overlapping tensors");
  // Bytes left over after the last tensor.
  spec = valid_spec(false);
  spec.tensors.push_back(make_tensor("tail", {0}, 0.0f));
  spec.tensors.back().values = {1.0f};
  spec.tensors.back().offsets = "[" + std::to_string(total) + "," + std::to_string(total) + "]";
  expect_refused(spec, "the tensors cover", "unused bytes after the tensors");
}

void offsets_not_matching_shape() {
  SceneSpec spec = valid_spec(false);
  spec.tensor("camera")->values.pop_back();
  expect_refused(spec, "data_offsets of camera span 96 bytes, but shape [25] of F32 needs 100",
                 "offsets not matching the shape");
}

void non_finite_values() {
  SceneSpec spec = valid_spec(true);
  spec.tensor("face.planes")->values[5] = std::numeric_limits<float>::quiet_NaN();
  expect_refused(spec, "face.planes contains NaN or infinity (element 5)", "NaN value");
  spec = valid_spec(true);
  spec.tensor("object.code")->values[0] = -std::numeric_limits<float>::infinity();
  expect_refused(spec, "object.code contains NaN or infinity", "infinite value");
}

void bad_metadata() {
  SceneSpec spec = valid_spec(false);
  spec.erase_metadata("ray_end");
  expect_refused(spec, "header metadata lacks \"ray_end\"", "missing metadata key");
  spec = valid_spec(false);
  spec.set_metadata("box_warp", "abc");
  expect_refused(spec, "box_warp must be a number (JSON syntax, e.g. \"2.25\"), got \"abc\"",
                 "non-numeric metadata");
  spec.set_metadata("box_warp", "1.0.0");
  expect_refused(spec, "box_warp must be a number", "two decimal points");
  spec.set_metadata("box_warp", "0x10");
  expect_refused(spec, "box_warp must be a number", "hexadecimal");
  spec.set_metadata("box_warp", "1__0");
  expect_refused(spec, "box_warp must be a number", "double underscore");
  spec.set_metadata("box_warp", "");
  expect_refused(spec, "box_warp must be a number", "empty value");
  spec = valid_spec(false);
  spec.set_metadata("ray_start", "3.3");
  spec.set_metadata("ray_end", "2.25");
  expect_refused(spec, "0 < ray_start < ray_end", "ray_start > ray_end");
  spec.set_metadata("ray_end", "3.3");
  expect_refused(spec, "0 < ray_start < ray_end", "ray_start == ray_end");
  spec.set_metadata("ray_start", "0");
  expect_refused(spec, "0 < ray_start < ray_end", "ray_start 0");
  spec = valid_spec(false);
  spec.set_metadata("box_warp", "0");
  expect_refused(spec, "box_warp > 0", "box_warp 0");
  spec = valid_spec(false);
  spec.set_metadata("resolution", "0.5");
  expect_refused(spec, "resolution must be an integer", "resolution 0.5");
  spec.set_metadata("resolution", "0");
  expect_refused(spec, "resolution must be in [1, 4096], got \"0\"", "resolution 0");
  spec = valid_spec(false);
  spec.set_metadata("coarse_samples", "1");
  expect_refused(spec, "coarse_samples must be in [2, 1024]", "one coarse sample");
  spec = valid_spec(false);
  spec.set_metadata("fine_samples", "99999999999999999999999");
  expect_refused(spec, "fine_samples must be in [0, 1024]", "fine_samples beyond int64");
  spec = valid_spec(false);
  spec.set_metadata("ray_end", "1e999");
  expect_refused(spec, "NaN or infinity", "ray_end overflowing to infinity");
  spec = valid_spec(false);
  spec.set_metadata("ray_end", "1e300");
  expect_refused(spec, "float32", "ray_end beyond float32");
  spec = valid_spec(false);
  spec.extra = ",\"__metadata__\":{}";
  expect_refused(spec, "duplicate key", "two metadata objects");
}

void wrong_format() {
  SceneSpec spec = valid_spec(false);
  spec.set_metadata("format", "innout-scene/2");
  expect_refused(spec, "format \"innout-scene/2\", expected \"innout-scene/1\"", "wrong format");
  spec.erase_metadata("format");
  expect_refused(spec, "lacks format", "no format");
  // Metadata values must be strings.
  expect_refused(file_bytes("{\"__metadata__\":{\"format\":1}}", ""), "must be a string",
                 "numeric metadata value");
  expect_refused(file_bytes("{\"__metadata__\":[]}", ""), "__metadata__ must be an object",
                 "metadata array");
}

std::string nested(int depth) {
  return std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']');
}

void nesting_depth() {
  // The header object is level 1: 63 arrays inside it are allowed (then refused as a tensor
  // entry), 64 are one level too many.
  SceneSpec spec = valid_spec(false);
  spec.extra = ",\"deep\":" + nested(63);
  expect_refused(spec, "tensor deep must be an object", "nesting at the limit");
  spec.extra = ",\"deep\":" + nested(64);
  expect_refused(spec, "nesting deeper than 64", "nesting over the limit");
  expect_refused(file_bytes(std::string(100000, '['), ""), "nesting deeper than 64",
                 "100000 open brackets");
}

// Corrupts every byte of a small valid file in a few ways: none may crash or read out of bounds,
// and whatever is accepted must be consistent.
void corrupted_bytes() {
  const std::vector<uint8_t> bytes = write_scene(valid_spec(true));
  const uint8_t replacements[] = {0x00, 0xFF, '{', '"', '9', '-', ']', 0x80};
  int accepted = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t r : replacements) {
      if (bytes[i] == r) continue;
      std::vector<uint8_t> copy(bytes);
      copy[i] = r;
      innout::Scene scene;
      const innout::Status status = parse(copy, &scene);
      if (!status.ok()) {
        check(!status.message.empty() && scene.tensors.empty(), "refusal has a message");
        continue;
      }
      ++accepted;
      for (const auto& kv : scene.tensors) {
        check(kv.second.numel() == static_cast<int64_t>(kv.second.data.size()),
              "accepted corruption is consistent");
      }
    }
  }
  // Only changes inside the float data can leave the file valid.
  check(accepted > 0, "some data-only corruptions are accepted");
}

// Every size is bounded (scene.h's kScene* limits): at the limit is accepted, one past it refused,
// before anything is allocated.
void size_limits() {
  const auto accepted = [](const SceneSpec& spec, const std::string& what) {
    innout::Scene scene;
    const innout::Status status = parse(write_scene(spec), &scene);
    check(status.ok(), what + " is accepted: " + status.message);
  };
  const std::pair<const char*, int64_t> settings[] = {{"resolution", innout::kSceneMaxResolution},
                                                      {"coarse_samples", innout::kSceneMaxSamples},
                                                      {"fine_samples", innout::kSceneMaxSamples}};
  for (const auto& [key, limit] : settings) {
    SceneSpec spec = valid_spec(false);
    spec.set_metadata(key, std::to_string(limit));
    accepted(spec, std::string(key) + " at the limit");
    spec.set_metadata(key, std::to_string(limit + 1));
    expect_refused(spec, std::string(key) + " must be in [", std::string(key) + " past the limit");
  }
  SceneSpec spec = valid_spec(false);
  spec.set_metadata("resolution", "20000");
  expect_refused(spec, "resolution must be in [1, 4096], got \"20000\"", "resolution 20000");

  // Plane sides: [3, C, 1, 2048] is accepted, [3, C, 1, 2049] and [3, C, 2049, 1] refused.
  const int64_t side = innout::kSceneMaxPlaneSize;
  spec = valid_spec(false);
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, kC, 1, side}, 0.0f);
  accepted(spec, "planes 2048 wide");
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, kC, 1, side + 1}, 0.0f);
  expect_refused(spec, "face.planes has W = 2049, expected 1 to 2048", "planes 2049 wide");
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, kC, side + 1, 1}, 0.0f);
  expect_refused(spec, "face.planes has H = 2049", "planes 2049 high");
  spec = valid_spec(true);
  *spec.tensor("object.planes") = make_tensor("object.planes", {3, kC, side + 1, 1}, 0.0f);
  expect_refused(spec, "object.planes has height 2049", "object planes 2049 high");

  // Widths: plane channels, hidden width, features and code size, each 1024 at most.
  const int64_t wide = innout::kSceneMaxChannels + 1;
  spec = valid_spec(false);
  *spec.tensor("face.planes") = make_tensor("face.planes", {3, wide, 1, 1}, 0.0f);
  *spec.tensor("face.hidden.weight") = make_tensor("face.hidden.weight", {kHidden, wide}, 0.0f);
  expect_refused(spec, "face.planes has C = 1025, expected 1 to 1024", "1025 channels");
  spec = valid_spec(false);
  *spec.tensor("face.hidden.weight") = make_tensor("face.hidden.weight", {wide, kC}, 0.0f);
  *spec.tensor("face.hidden.bias") = make_tensor("face.hidden.bias", {wide}, 0.0f);
  *spec.tensor("face.output.weight") = make_tensor("face.output.weight", {1 + kF, wide}, 0.0f);
  expect_refused(spec, "face.hidden.weight has rows (hidden width) 1025", "hidden width 1025");
  spec = valid_spec(false);
  *spec.tensor("face.output.weight") = make_tensor("face.output.weight", {1 + wide, kHidden}, 0.0f);
  *spec.tensor("face.output.bias") = make_tensor("face.output.bias", {1 + wide}, 0.0f);
  expect_refused(spec, "face.output.weight has rows (1 + F features) 1026", "1025 features");
  spec = valid_spec(false);
  *spec.tensor("face.output.weight") = make_tensor("face.output.weight", {1, kHidden}, 0.0f);
  *spec.tensor("face.output.bias") = make_tensor("face.output.bias", {1}, 0.0f);
  expect_refused(spec, "face.output.weight has rows (1 + F features) 1, expected 2", "no feature");
  spec = valid_spec(true);
  *spec.tensor("object.code") = make_tensor("object.code", {wide}, 0.0f);
  *spec.tensor("object.hidden.weight") =
      make_tensor("object.hidden.weight", {kOh, kC + wide}, 0.0f);
  expect_refused(spec, "object.code has K = 1025", "code size 1025");
  spec = valid_spec(true);
  *spec.tensor("object.hidden.weight") = make_tensor("object.hidden.weight", {0, kC + kK}, 0.0f);
  *spec.tensor("object.hidden.bias") = make_tensor("object.hidden.bias", {0}, 0.0f);
  *spec.tensor("object.output.weight") = make_tensor("object.output.weight", {2 + kF, 0}, 0.0f);
  expect_refused(spec, "object.hidden.weight has rows (hidden width) 0", "object hidden width 0");

  // At most 64 tensor entries (extra ones are allowed up to that).
  spec = valid_spec(true);
  while (spec.tensors.size() < static_cast<size_t>(innout::kSceneMaxTensors)) {
    spec.tensors.push_back(make_tensor("extra" + std::to_string(spec.tensors.size()), {1}, 0.0f));
  }
  accepted(spec, "64 tensors");
  spec.tensors.push_back(make_tensor("one_more", {1}, 0.0f));
  expect_refused(spec, "more than 64 tensors", "65 tensors");

  // A header longer than 1 MiB is refused even when the file holds it.
  spec = valid_spec(false);
  spec.set_metadata("padding", std::string(static_cast<size_t>(innout::kSceneMaxHeaderBytes), 'x'));
  expect_refused(spec, "exceeds the limit of 1048576 bytes", "a 1 MiB metadata string");
}

// Importance sampling needs K >= 4 coarse samples: a scene with fine samples and fewer cannot be
// rendered, so it is refused when read.
void coarse_samples_for_importance_sampling() {
  SceneSpec spec = valid_spec(false);
  spec.set_metadata("coarse_samples", "3");
  expect_refused(spec, "coarse_samples must be >= 4 when fine_samples > 0, got 3", "K = 3, N = 12");
  spec.set_metadata("fine_samples", "0");
  innout::Scene scene;
  const innout::Status status = parse(write_scene(spec), &scene);
  check(status.ok(), "K = 3 without fine samples is accepted: " + status.message);
}

// A camera that renders NaN (or a sheared image) without another error is refused.
void degenerate_cameras() {
  const auto with_camera = [](std::vector<float> camera) {
    SceneSpec spec = valid_spec(true);
    spec.tensor("camera")->values = std::move(camera);
    return spec;
  };
  expect_refused(with_camera(std::vector<float>(25, 0.0f)),
                 "camera is degenerate: expected a cam2world whose rotation (top-left 3x3) is "
                 "orthonormal to within 0.001, got |R R^T - I| = 1",
                 "all-zero camera");
  std::vector<float> camera = frontal_camera();
  camera[16] = 0.0f;
  expect_refused(with_camera(camera), "camera is degenerate: expected normalised focal lengths",
                 "zero fx");
  camera = frontal_camera();
  camera[20] = -4.2647f;
  expect_refused(with_camera(camera), "focal lengths", "negative fy");
  camera = frontal_camera();
  camera[20] = 1e-4f;
  expect_refused(with_camera(camera), "focal lengths", "fy below the minimum");
  camera = frontal_camera();
  camera[5] = -1.01f;  // a rotation row stretched by 1%
  expect_refused(with_camera(camera), "orthonormal", "stretched rotation");
  camera = frontal_camera();
  camera[1] = 0.5f;  // rows no longer orthogonal
  expect_refused(with_camera(camera), "orthonormal", "sheared rotation");
  camera = frontal_camera();
  camera[12] = 0.5f;
  expect_refused(with_camera(camera), "last row [0, 0, 0, 1]", "projective last row");
  camera = frontal_camera();
  camera[24] = 0.0f;
  expect_refused(with_camera(camera), "intrinsics rows", "intrinsics without the last 1");
  camera = frontal_camera();
  camera[3] = std::numeric_limits<float>::infinity();
  expect_refused(with_camera(camera), "camera contains NaN or infinity (element 3)",
                 "infinite translation");
  // Within the tolerance, and mirrored rotations (orthonormal too), are accepted.
  camera = frontal_camera();
  camera[5] = -1.0004f;
  camera[1] = 0.0004f;
  innout::Scene scene;
  innout::Status status = parse(write_scene(with_camera(camera)), &scene);
  check(status.ok(), "a rotation orthonormal to 1e-3 is accepted: " + status.message);
  camera = frontal_camera();
  camera[0] = -1.0f;
  status = parse(write_scene(with_camera(camera)), &scene);
  check(status.ok(), "a mirrored rotation is accepted: " + status.message);
  // check_camera on its own.
  check(innout::check_camera(frontal_camera().data()).ok(), "check_camera of the frontal camera");
  check(!innout::check_camera(nullptr).ok(), "check_camera of a null pointer");
  camera = frontal_camera();
  camera[7] = std::numeric_limits<float>::quiet_NaN();
  status = innout::check_camera(camera.data());
  check(!status.ok() && contains(status.message, "element 7"),
        "check_camera names a NaN: " + status.message);
}

// The renderer's own checks of hand-built scenes: sizes whose products overflow int64 are refused
// instead of wrapping around (UBSan aborts on the overflow itself).
void renderer_bounds() {
  innout::Scene scene;
  check(parse(write_scene(valid_spec(false)), &scene).ok(), "a valid scene for the views");
  innout::SceneStorage storage;
  innout::RenderScene view;
  innout::CameraLabel camera;
  innout::Scene huge = scene;
  const int64_t big = int64_t(1) << 40;
  huge.tensors["face.planes"].shape = {3, big, big, big};
  innout::Status status = innout::view_scene(huge, &storage, &view, &camera);
  check(!status.ok() && contains(status.message, "face.planes"),
        "view_scene refuses a shape whose product overflows: " + status.message);
  status = innout::view_scene(scene, &storage, &view, &camera);
  check(status.ok(), "view_scene of a valid scene: " + status.message);
  if (!status.ok()) return;
  std::vector<float> features(static_cast<size_t>(view.feature_channels()) * 4);
  innout::RenderTarget target;
  target.resolution = 2;
  target.features = features.data();
  float workspace[1] = {0.0f};
  for (const int64_t samples : {int64_t(1) << 61, innout::kSceneMaxSamples + 1}) {
    innout::RenderScene bad = view;
    bad.coarse_samples = samples;
    status = innout::cpu::render(bad, camera, target, workspace, 1, {});
    check(!status.ok() && contains(status.message, "coarse_samples and fine_samples <= 1024"),
          "render refuses " + std::to_string(samples) + " coarse samples: " + status.message);
  }
  innout::RenderScene bad = view;
  bad.face_decoder.hidden = int64_t(1) << 62;
  status = innout::cpu::render(bad, camera, target, workspace, 1, {});
  check(!status.ok() && contains(status.message, "decoder widths"),
        "render refuses a 2^62 wide decoder: " + status.message);
}

}  // namespace

// `test_scene FILE...`: loads each scene file and prints what it holds (exit 1 if any is
// refused). Lets the Python tests check that files written by `innout export-scene` are read, and
// that damaged ones are refused, by this reader under the sanitizers.
int check_files(int count, char** paths) {
  int refused = 0;
  for (int i = 0; i < count; ++i) {
    innout::Scene scene;
    const innout::Status status = innout::load_scene(paths[i], &scene);
    if (!status.ok()) {
      std::printf("refused: %s\n", status.message.c_str());
      ++refused;
      continue;
    }
    double sum = 0.0;
    for (const auto& entry : scene.tensors) {
      for (const float value : entry.second.data) sum += value;
    }
    std::printf("loaded: %s tensors=%zu resolution=%lld object=%d sum=%.6f\n", paths[i],
                scene.tensors.size(), static_cast<long long>(scene.resolution),
                scene.has_object() ? 1 : 0, sum);
  }
  return refused == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc > 1) return check_files(argc - 1, argv + 1);
  valid_scene(false);
  valid_scene(true);
  unaligned_buffer();
  json_number_settings();
  json_escapes();
  load_from_file();
  truncated_files();
  huge_header_length();
  header_not_json();
  header_not_object();
  wrong_dtype();
  wrong_shape();
  missing_tensors();
  bad_offsets();
  offsets_not_matching_shape();
  non_finite_values();
  bad_metadata();
  wrong_format();
  nesting_depth();
  corrupted_bytes();
  size_limits();
  coarse_samples_for_importance_sampling();
  degenerate_cameras();
  renderer_bounds();
  std::printf("%s (%d failures)\n", failures == 0 ? "all scene reader tests passed" : "FAILED",
              failures);
  return failures == 0 ? 0 : 1;
}
