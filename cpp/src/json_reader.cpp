// The JSON reader of json_reader.h.
#include "json_reader.h"

#include <cstring>
#include <limits>
#include <set>
#include <utility>

namespace innout {
namespace detail {
namespace {

// A strict RFC 8259 parser of one JSON document (the input must be valid UTF-8), with a nesting
// limit so that a hostile header cannot exhaust the stack.
class JsonParser {
 public:
  JsonParser(const char* data, size_t size) : begin_(data), p_(data), end_(data + size) {}

  bool parse(Json* out) {
    skip_space();
    if (!value(out, 0)) return false;
    skip_space();
    if (p_ != end_) return fail("unexpected characters after the JSON value");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& what) {
    error_ = what + " at byte " + std::to_string(p_ - begin_);
    return false;
  }
  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) {
      return fail("invalid literal");
    }
    p_ += n;
    return true;
  }

  bool value(Json* out, int depth) {
    if (p_ == end_) return fail("unexpected end of the JSON text");
    switch (*p_) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"':
        out->kind = Json::Kind::kString;
        return string(&out->text);
      case 't':
        out->kind = Json::Kind::kBool;
        out->boolean = true;
        return literal("true");
      case 'f':
        out->kind = Json::Kind::kBool;
        out->boolean = false;
        return literal("false");
      case 'n':
        out->kind = Json::Kind::kNull;
        return literal("null");
      default:
        out->kind = Json::Kind::kNumber;
        return number(&out->text);
    }
  }

  bool object(Json* out, int depth) {
    if (depth > kMaxJsonDepth) {
      return fail("JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    out->kind = Json::Kind::kObject;
    ++p_;  // '{'
    skip_space();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    std::set<std::string> seen;
    while (true) {
      skip_space();
      if (p_ == end_ || *p_ != '"') return fail("expected a string key");
      std::string key;
      if (!string(&key)) return false;
      if (!seen.insert(key).second) return fail("duplicate key \"" + key + "\"");
      skip_space();
      if (p_ == end_ || *p_ != ':') return fail("expected ':'");
      ++p_;
      skip_space();
      out->keys.push_back(std::move(key));
      out->items.emplace_back();
      if (!value(&out->items.back(), depth)) return false;
      skip_space();
      if (p_ == end_) return fail("unterminated object");
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail("expected ',' or '}'");
      ++p_;
    }
  }

  bool array(Json* out, int depth) {
    if (depth > kMaxJsonDepth) {
      return fail("JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    out->kind = Json::Kind::kArray;
    ++p_;  // '['
    skip_space();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      skip_space();
      out->items.emplace_back();
      if (!value(&out->items.back(), depth)) return false;
      skip_space();
      if (p_ == end_) return fail("unterminated array");
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail("expected ',' or ']'");
      ++p_;
    }
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t* out) {
    if (end_ - p_ < 4) return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = hex_digit(p_[i]);
      if (d < 0) return fail("invalid \\u escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    p_ += 4;
    *out = v;
    return true;
  }
  static void append_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool string(std::string* out) {
    ++p_;  // opening quote
    while (true) {
      if (p_ == end_) return fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++p_;
        continue;
      }
      ++p_;
      if (p_ == end_) return fail("unterminated string");
      const char e = *p_++;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
              return fail("lone high surrogate in a \\u escape");
            }
            p_ += 2;
            uint32_t low = 0;
            if (!hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(cp, out);
          break;
        }
        default:
          --p_;
          return fail("invalid escape in a string");
      }
    }
  }

  bool digits() {
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("invalid number");
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return true;
  }
  bool number(std::string* out) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return fail("invalid number");
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      digits();
    } else {
      return fail("unexpected character");
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
    }
    out->assign(start, p_);
    return true;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string error_;
};

}  // namespace

bool valid_utf8(const uint8_t* data, size_t size, size_t* bad) {
  size_t i = 0;
  while (i < size) {
    const uint8_t c = data[i];
    size_t extra = 0;
    uint32_t lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      *bad = i;
      return false;
    }
    if (size - i <= extra) {
      *bad = i;
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      const uint8_t b = data[i + k];
      const uint32_t min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
      if (b < min || b > max) {
        *bad = i;
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

bool parse_json(const char* data, size_t size, Json* out, std::string* error) {
  JsonParser parser(data, size);
  if (parser.parse(out)) return true;
  *error = parser.error();
  return false;
}

bool json_index(const Json& v, int64_t* out) {
  if (v.kind != Json::Kind::kNumber || v.text.empty()) return false;
  int64_t n = 0;
  for (char c : v.text) {
    if (c < '0' || c > '9') return false;
    const int64_t d = c - '0';
    if (n > (std::numeric_limits<int64_t>::max() - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

}  // namespace detail
}  // namespace innout
