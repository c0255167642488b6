// innout._C: the core ops over raw buffers. The Python adapter (python/innout/ops/) passes tensor
// data pointers, sizes, the thread count and the CUDA stream; this module never links libtorch, so
// one build works with any PyTorch version. Errors come back as Python exceptions carrying the
// core's status message.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "innout/cpu.h"
#include "innout/version.h"
#ifdef INNOUT_WITH_CUDA
#include "innout/cuda.h"
#endif
#ifdef INNOUT_WITH_OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace py = pybind11;

namespace {

using innout::Status;
using innout::StatusCode;

template <typename T>
T* ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

void raise_if_error(const Status& status) {
  if (status.ok()) return;
  if (status.code == StatusCode::kInvalidArgument) throw py::value_error(status.message);
  throw std::runtime_error(status.message);
}

// Where and how an op runs: the device, the float type and backend options.
struct Launch {
  bool cuda;
  bool double_precision;
  int num_threads;
  std::uintptr_t stream;
};

Launch make_launch(const std::string& device, const std::string& dtype, int num_threads,
                   std::uintptr_t stream) {
  if (device != "cpu" && device != "cuda") {
    throw py::value_error("device must be 'cpu' or 'cuda', got '" + device + "'");
  }
  if (dtype != "float32" && dtype != "float64") {
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  }
#ifndef INNOUT_WITH_CUDA
  if (device == "cuda") {
    throw std::runtime_error(
        "innout was built without its CUDA backend; rebuild with nvcc available "
        "(INNOUT_CUDA=ON) or use the CPU / backend='reference'");
  }
#endif
  return {device == "cuda", dtype == "float64", num_threads, stream};
}

// Runs cpu_fn or cuda_fn on params with the GIL released.
template <typename Params, typename CpuFn, typename CudaFn>
void run(const Launch& launch, const Params& params, CpuFn cpu_fn, CudaFn cuda_fn) {
  Status status;
  {
    py::gil_scoped_release release;
    if (launch.cuda) {
#ifdef INNOUT_WITH_CUDA
      innout::cuda::CudaOptions options;
      options.stream = reinterpret_cast<void*>(launch.stream);
      status = cuda_fn(params, options);
#else
      (void)cuda_fn;
#endif
    } else {
      innout::CpuOptions options;
      options.num_threads = launch.num_threads;
      status = cpu_fn(params, options);
    }
  }
  raise_if_error(status);
}

#ifdef INNOUT_WITH_CUDA
#define INNOUT_CUDA_FN(name) [](const auto& p, const auto& o) { return innout::cuda::name(p, o); }
#else
#define INNOUT_CUDA_FN(name) [](const auto&, const auto&) { return Status::Ok(); }
#endif
#define INNOUT_CPU_FN(name) [](const auto& p, const auto& o) { return innout::cpu::name(p, o); }

template <typename T>
innout::TriplaneSampleParams<T> triplane_params(const py::dict& a) {
  innout::TriplaneSampleParams<T> p;
  p.planes = ptr<const T>(a["planes"].cast<std::uintptr_t>());
  p.plane_batch = a["plane_batch"].cast<int64_t>();
  p.channels = a["channels"].cast<int64_t>();
  p.height = a["height"].cast<int64_t>();
  p.width = a["width"].cast<int64_t>();
  p.points = ptr<const T>(a["points"].cast<std::uintptr_t>());
  p.batch = a["batch"].cast<int64_t>();
  p.num_points = a["num_points"].cast<int64_t>();
  p.box_warp = static_cast<T>(a["box_warp"].cast<double>());
  p.features = ptr<T>(a.contains("features") ? a["features"].cast<std::uintptr_t>() : 0);
  p.grad_features =
      ptr<const T>(a.contains("grad_features") ? a["grad_features"].cast<std::uintptr_t>() : 0);
  p.grad_planes = ptr<T>(a.contains("grad_planes") ? a["grad_planes"].cast<std::uintptr_t>() : 0);
  p.grad_points = ptr<T>(a.contains("grad_points") ? a["grad_points"].cast<std::uintptr_t>() : 0);
  return p;
}

std::uintptr_t optional_address(const py::dict& a, const char* key) {
  return a.contains(key) ? a[key].cast<std::uintptr_t>() : 0;
}

template <typename T>
innout::CompositeMarchParams<T> composite_params(const py::dict& a) {
  innout::CompositeMarchParams<T> p;
  p.num_rays = a["num_rays"].cast<int64_t>();
  p.num_samples = a["num_samples"].cast<int64_t>();
  p.channels = a["channels"].cast<int64_t>();
  p.depths = ptr<const T>(optional_address(a, "depths"));
  p.density_in = ptr<const T>(optional_address(a, "density_in"));
  p.features_in = ptr<const T>(optional_address(a, "features_in"));
  p.density_out = ptr<const T>(optional_address(a, "density_out"));
  p.features_out = ptr<const T>(optional_address(a, "features_out"));
  p.blend = ptr<const T>(optional_address(a, "blend"));
  p.composite = ptr<T>(optional_address(a, "composite"));
  p.depth = ptr<T>(optional_address(a, "depth"));
  p.weights = ptr<T>(optional_address(a, "weights"));
  p.transmittance = ptr<T>(optional_address(a, "transmittance"));
  p.interval_record = ptr<T>(optional_address(a, "interval_record"));
  p.grad_composite = ptr<const T>(optional_address(a, "grad_composite"));
  p.grad_depth = ptr<const T>(optional_address(a, "grad_depth"));
  p.grad_weights = ptr<const T>(optional_address(a, "grad_weights"));
  p.grad_depths = ptr<T>(optional_address(a, "grad_depths"));
  p.grad_density_in = ptr<T>(optional_address(a, "grad_density_in"));
  p.grad_features_in = ptr<T>(optional_address(a, "grad_features_in"));
  p.grad_density_out = ptr<T>(optional_address(a, "grad_density_out"));
  p.grad_features_out = ptr<T>(optional_address(a, "grad_features_out"));
  p.grad_blend = ptr<T>(optional_address(a, "grad_blend"));
  return p;
}

template <typename T>
innout::ImportanceSampleParams<T> importance_params(const py::dict& a) {
  innout::ImportanceSampleParams<T> p;
  p.num_rays = a["num_rays"].cast<int64_t>();
  p.num_samples = a["num_samples"].cast<int64_t>();
  p.num_importance = a["num_importance"].cast<int64_t>();
  p.depths = ptr<const T>(optional_address(a, "depths"));
  p.weights = ptr<const T>(optional_address(a, "weights"));
  p.uniforms = ptr<const T>(optional_address(a, "uniforms"));
  p.cdf = ptr<T>(optional_address(a, "cdf"));
  p.samples = ptr<T>(optional_address(a, "samples"));
  return p;
}

template <typename T>
innout::StratifiedSampleParams<T> stratified_params(const py::dict& a) {
  innout::StratifiedSampleParams<T> p;
  p.num_rays = a["num_rays"].cast<int64_t>();
  p.num_samples = a["num_samples"].cast<int64_t>();
  p.near = ptr<const T>(optional_address(a, "near"));
  p.far = ptr<const T>(optional_address(a, "far"));
  p.uniforms = ptr<const T>(optional_address(a, "uniforms"));
  p.depths = ptr<T>(optional_address(a, "depths"));
  return p;
}

// Binds one op direction: fn(device, dtype, num_threads, stream, buffers) where `buffers` is a dict
// of sizes and data pointers named like the fields of the op's params struct.
#define INNOUT_BIND_OP(module, py_name, make_params, fn_name, doc)                    \
  module.def(                                                                         \
      py_name,                                                                        \
      [](const std::string& device, const std::string& dtype, int num_threads,        \
         std::uintptr_t stream, const py::dict& buffers) {                            \
        const Launch launch = make_launch(device, dtype, num_threads, stream);        \
        if (launch.double_precision) {                                                \
          run(launch, make_params<double>(buffers), INNOUT_CPU_FN(fn_name),           \
              INNOUT_CUDA_FN(fn_name));                                               \
        } else {                                                                      \
          run(launch, make_params<float>(buffers), INNOUT_CPU_FN(fn_name),            \
              INNOUT_CUDA_FN(fn_name));                                               \
        }                                                                             \
      },                                                                              \
      py::arg("device"), py::arg("dtype"), py::arg("num_threads"), py::arg("stream"), \
      py::arg("buffers"), doc)

py::dict build_info() {
  py::dict info;
  info["version"] = INNOUT_VERSION;
#ifdef INNOUT_WITH_OPENMP
  info["openmp"] = true;
  info["openmp_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_threads"] = 1;
#endif
#ifdef INNOUT_WITH_CUDA
  info["cuda_compiled"] = true;
  info["cuda_architectures"] = INNOUT_CUDA_ARCHS;
  const innout::cuda::DeviceInfo device = innout::cuda::device_info();
  info["cuda_runtime_version"] = device.runtime_version;
  info["cuda_device_count"] = device.device_count;
  info["cuda_unavailable_reason"] = device.reason;
#else
  info["cuda_compiled"] = false;
  info["cuda_architectures"] = "";
  info["cuda_runtime_version"] = 0;
  info["cuda_device_count"] = 0;
  info["cuda_unavailable_reason"] = "innout was built without its CUDA backend";
#endif
  return info;
}

// Asks Linux to back [address, address + bytes) with transparent huge pages where whole 2 MiB pages
// fit. Large fresh outputs otherwise pay one page fault per 4 KiB on first write, which costs as
// much as the kernels that fill them. Returns whether the advice was taken; a hint only, never an
// error.
bool advise_huge_pages(std::uintptr_t address, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const std::uintptr_t huge = std::uintptr_t{1} << 21;
  const std::uintptr_t begin = (address + huge - 1) & ~(huge - 1);
  const std::uintptr_t end = (address + bytes) & ~(huge - 1);
  if (end <= begin) return false;
  return madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
#else
  (void)address;
  (void)bytes;
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "innout core ops over raw buffers (use innout.ops, not this module, from Python)";
  m.def("advise_huge_pages", &advise_huge_pages, py::arg("address"), py::arg("bytes"),
        "Hint that a large host buffer should use transparent huge pages (Linux; else no-op).");
  m.def("build_info", &build_info,
        "Version, OpenMP threads, whether CUDA is compiled in and what the CUDA runtime sees.");
  INNOUT_BIND_OP(m, "triplane_sample_forward", triplane_params, triplane_sample_forward,
                 "Tri-plane features of points (see cpp/include/innout/triplane_sample.h).");
  INNOUT_BIND_OP(m, "triplane_sample_backward", triplane_params, triplane_sample_backward,
                 "Gradients of triplane_sample for the planes and/or the points.");
  INNOUT_BIND_OP(m, "composite_march_forward", composite_params, composite_march_forward,
                 "Composite volume rendering of one or two fields (composite_march.h).");
  INNOUT_BIND_OP(m, "composite_march_backward", composite_params, composite_march_backward,
                 "Gradients of composite_march for every input that has an output buffer.");
  INNOUT_BIND_OP(m, "importance_sample", importance_params, importance_sample,
                 "EG3D's importance depths from coarse weights (importance_sample.h).");
  INNOUT_BIND_OP(m, "stratified_sample", stratified_params, stratified_sample,
                 "EG3D's stratified coarse depths (stratified_sample.h).");
}
