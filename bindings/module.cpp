// innout._C: the core ops over raw buffers. The Python adapter (python/innout/ops/) passes each
// op's fields (sizes, scalars and tensors, checked against the op's field table in op_fields.h),
// the thread count and the CUDA stream; this module never links libtorch (it reads a tensor's
// data_ptr() and numel() through Python), so one build works with any PyTorch version. Errors
// come back as Python exceptions carrying the core's status message.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "innout/cpu.h"
#include "innout/version.h"
#include "op_fields.h"
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

// Binds one op direction: fn(device, dtype, num_threads, stream, fields) where `fields` is a dict
// holding exactly the fields of the op's params struct that this direction reads (op_fields.h).
#define INNOUT_BIND_OP(module, py_name, field_table, direction, fn_name, doc)                   \
  module.def(                                                                                   \
      py_name,                                                                                  \
      [](const std::string& device, const std::string& dtype, int num_threads,                  \
         std::uintptr_t stream, const py::dict& fields) {                                       \
        const Launch launch = make_launch(device, dtype, num_threads, stream);                  \
        if (launch.double_precision) {                                                          \
          run(launch, innout::bindings::field_table<double>().read(py_name, direction, fields), \
              INNOUT_CPU_FN(fn_name), INNOUT_CUDA_FN(fn_name));                                 \
        } else {                                                                                \
          run(launch, innout::bindings::field_table<float>().read(py_name, direction, fields),  \
              INNOUT_CPU_FN(fn_name), INNOUT_CUDA_FN(fn_name));                                 \
        }                                                                                       \
      },                                                                                        \
      py::arg("device"), py::arg("dtype"), py::arg("num_threads"), py::arg("stream"),           \
      py::arg("fields"), doc)

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
  using innout::bindings::kBackward;
  using innout::bindings::kForward;
  INNOUT_BIND_OP(m, "triplane_sample_forward", triplane_sample_fields, kForward,
                 triplane_sample_forward,
                 "Tri-plane features of points (see cpp/include/innout/triplane_sample.h).");
  INNOUT_BIND_OP(m, "triplane_sample_backward", triplane_sample_fields, kBackward,
                 triplane_sample_backward,
                 "Gradients of triplane_sample for the planes and/or the points.");
  INNOUT_BIND_OP(m, "composite_march_forward", composite_march_fields, kForward,
                 composite_march_forward,
                 "Composite volume rendering of one or two fields (composite_march.h).");
  INNOUT_BIND_OP(m, "composite_march_backward", composite_march_fields, kBackward,
                 composite_march_backward,
                 "Gradients of composite_march for every input that has an output buffer.");
  INNOUT_BIND_OP(m, "importance_sample", importance_sample_fields, kForward, importance_sample,
                 "EG3D's importance depths from coarse weights (importance_sample.h).");
  INNOUT_BIND_OP(m, "stratified_sample", stratified_sample_fields, kForward, stratified_sample,
                 "EG3D's stratified coarse depths (stratified_sample.h).");
}
