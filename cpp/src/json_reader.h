// A strict JSON reader for the header of a safetensors file (private to the scene reader, not
// installed). The header is untrusted: the reader checks UTF-8, follows RFC 8259 exactly (no
// duplicate keys) and bounds its recursion so that a hostile file cannot exhaust the stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "innout/scene.h"

namespace innout {
namespace detail {

constexpr int kMaxJsonDepth = static_cast<int>(kSceneMaxJsonDepth);

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;               // a string's value, or a number's literal text
  std::vector<Json> items;        // an array's elements, or an object's values
  std::vector<std::string> keys;  // an object's keys, parallel to items

  const Json* member(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &items[i];
    }
    return nullptr;
  }
};

// Whether `data` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF); `*bad` gets the offset of the first bad byte otherwise.
bool valid_utf8(const uint8_t* data, size_t size, size_t* bad);

// Parses `size` bytes at `data` (valid UTF-8) as one JSON document into `out`. Returns false with
// `error` saying what was wrong and at which byte otherwise.
bool parse_json(const char* data, size_t size, Json* out, std::string* error);

// A JSON integer literal >= 0 that fits int64 (no sign, fraction or exponent, as safetensors).
bool json_index(const Json& v, int64_t* out);

}  // namespace detail
}  // namespace innout
