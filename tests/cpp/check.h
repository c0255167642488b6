// The ctest executables' minimal check: count and print failures, main returns non-zero if any.
#pragma once

#include <cstdio>
#include <string>

namespace innout_test {

inline int failures = 0;

inline void check(bool condition, const std::string& what) {
  if (!condition) {
    std::printf("FAILED: %s\n", what.c_str());
    ++failures;
  }
}

}  // namespace innout_test
