// Shared definitions of the innout core: the host/device qualifier used by the single-source maths,
// the status type returned across the library boundary, and small numeric helpers.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

// Promise that two pointers do not alias, so per-channel loops vectorise (host and device).
#define INNOUT_RESTRICT __restrict__

// Lets the compiler vectorise a floating-point sum over channels (reassociating it), which it may
// not do on its own without -ffast-math. Host code built with OpenMP only; a no-op elsewhere. The
// order of the partial sums is fixed by the binary, so results stay bitwise reproducible.
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define INNOUT_PRAGMA(text) _Pragma(#text)
#define INNOUT_SIMD_SUM(var) INNOUT_PRAGMA(omp simd reduction(+ : var))
#else
#define INNOUT_SIMD_SUM(var)
#endif

#if defined(__CUDACC__)
#define INNOUT_HD __host__ __device__ __forceinline__
#else
#define INNOUT_HD inline
#endif

// A rarely taken path (non-finite inputs) kept out of line, so that it does not cost the hot loops
// that call it registers or instruction cache.
#if defined(__CUDACC__)
#define INNOUT_HD_COLD __host__ __device__ __noinline__
#elif defined(__GNUC__)
#define INNOUT_HD_COLD __attribute__((noinline, cold))
#else
#define INNOUT_HD_COLD
#endif

namespace innout {

// Every entry point returns a Status instead of throwing or aborting, so that the library can sit
// behind a C ABI, a Python binding or another application without unwinding across the boundary.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // a size, pointer or option the caller passed is unusable
  kNotCompiled = 2,      // the requested backend (CUDA) is not part of this build
  kDeviceError = 3,      // the CUDA runtime reported an error
};

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;

  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return {}; }
  static Status Invalid(std::string what) {
    return {StatusCode::kInvalidArgument, std::move(what)};
  }
};

namespace detail {

// Whether x is neither infinite nor NaN (a comparison, so also exact on the GPU and under any
// floating-point flags that keep NaN).
template <typename T>
INNOUT_HD bool is_finite(T x) {
  using std::fabs;
  return fabs(x) <= std::numeric_limits<T>::max();
}

}  // namespace detail

// Options of the CPU backend. num_threads <= 0 means "OpenMP's default".
struct CpuOptions {
  int num_threads = 0;
};

}  // namespace innout
