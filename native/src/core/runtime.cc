// Process-wide runtime settings and facts: threads, seeding, allocator tuning, and what `arcface doctor` prints.
#include "core/common.h"
#include "core/torch_version.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <dlfcn.h>
#include <link.h>
#ifdef ARCFACE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace arcface {

std::string CudaUnavailableReason() {
#ifdef ARCFACE_CUDA
  return at::hasCUDA() ? "" : "the addon is built with CUDA, but no CUDA device is visible here (no GPU, or no driver)";
#else
  return "the addon is built without CUDA (rebuild it with ARCFACE_TORCH_DIR=<a CUDA PyTorch's torch/ folder> ARCFACE_CUDA=1 "
         "bash scripts/setup.sh)";
#endif
}

namespace {

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: need at least 1 thread");
  at::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

// Seeds the default CPU generator (and CUDA's, when built for it), like torch.manual_seed.
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  const uint64_t seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  auto gen = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
#ifdef ARCFACE_CUDA
  // Every visible GPU's, as torch.manual_seed; none when no device is there (a CUDA build on a CPU
  // machine), where asking for a CUDA generator would throw.
  for (size_t i = 0; i < at::getNumGPUs(); ++i) {
    at::Generator cuda = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_current_seed(seed);
  }
#endif
  return info.Env().Undefined();
}

// The shared library that provides BLAS (dgemm_), found among the loaded objects.
std::string BlasLibrary() {
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info dl;
  if (sym && dladdr(sym, &dl) && dl.dli_fname) {
    char resolved[PATH_MAX];
    if (realpath(dl.dli_fname, resolved)) return resolved;
    return dl.dli_fname;
  }
  return "";
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  out.Set("torchVersion", TORCH_VERSION);
  out.Set("numThreads", at::get_num_threads());
  out.Set("numInteropThreads", at::get_num_interop_threads());
  out.Set("parallelInfo", at::get_parallel_info());
  out.Set("config", at::show_config());
  out.Set("blasLibrary", BlasLibrary());
  using ConfigFn = char* (*)();
  using ThreadsFn = int (*)();
  if (auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    out.Set("openblasConfig", config());
  }
  if (auto threads = reinterpret_cast<ThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) {
    out.Set("openblasThreads", threads());
  }
  out.Set("cudaAvailable", at::hasCUDA());
#ifdef ARCFACE_CUDA
  out.Set("cudaBuild", true);
#else
  out.Set("cudaBuild", false);
#endif
  // Gloo ships inside libtorch_cpu when libtorch was built with it; look for its process group.
  out.Set("glooAvailable", dlsym(RTLD_DEFAULT, "_ZN4c10d16ProcessGroupGloo10getContextEj") != nullptr);
  out.Set("mkldnnAvailable", at::hasMKLDNN());
  return out;
}

#ifdef ARCFACE_CUDA
// cudart's version numbers: 13000 → "13.0".
std::string CudaVersionString(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
#endif

// cudaInfo() → {built: false}, or {built: true, runtimeVersion, driverVersion (null without a driver),
// devices: [{index, name, computeCapability, totalMemory, freeMemory}], error?: why none is visible}.
// Free memory needs a context on each device: for `arcface doctor`, not for a training process.
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
#ifdef ARCFACE_CUDA
  out.Set("built", true);
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  out.Set("runtimeVersion", CudaVersionString(runtime));
  out.Set("driverVersion", driver > 0 ? Napi::Value(Napi::String::New(env, CudaVersionString(driver))) : env.Null());
  auto devices = Napi::Array::New(env);
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    out.Set("error", cudaGetErrorString(error));
    count = 0;
    cudaGetLastError();  // clears it for whoever asks next
  }
  int current = 0;
  if (count > 0) cudaGetDevice(&current);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    size_t free = 0, total = 0;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess || cudaSetDevice(i) != cudaSuccess || cudaMemGetInfo(&free, &total) != cudaSuccess) {
      out.Set("error", std::string("device ") + std::to_string(i) + ": " + cudaGetErrorString(cudaGetLastError()));
      continue;
    }
    auto d = Napi::Object::New(env);
    d.Set("index", i);
    d.Set("name", prop.name);
    d.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    d.Set("totalMemory", static_cast<double>(prop.totalGlobalMem));  // torch.cuda.get_device_properties(i).total_memory
    d.Set("freeMemory", static_cast<double>(free));
    devices.Set(devices.Length(), d);
  }
  if (count > 0) cudaSetDevice(current);
  out.Set("devices", devices);
#else
  out.Set("built", false);
#endif
  return out;
}

// A default generator's state as a uint8 tensor (torch.get_rng_state / torch.cuda.get_rng_state), and
// back: the CPU's, or a CUDA device's when a device is named.
at::Generator DefaultGenerator(const Napi::CallbackInfo& info, size_t arg, const char* where) {
  if (info.Length() <= arg || info[arg].IsUndefined()) return at::detail::getDefaultCPUGenerator();
  if (!info[arg].IsString()) throw Napi::TypeError::New(info.Env(), std::string(where) + ": the device must be a string");
  return at::globalContext().defaultGenerator(CheckDevice(info.Env(), where, info[arg].As<Napi::String>().Utf8Value()));
}

Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto gen = DefaultGenerator(info, 0, "getRngState");
    std::lock_guard<std::mutex> lock(gen.mutex());
    return WrapTensor(env, gen.get_state());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor& state = UnwrapTensor(info[0], "setRngState state");
  try {
    auto gen = DefaultGenerator(info, 1, "setRngState");
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  return env.Undefined();
}

}  // namespace

void InitRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("getRngState", Napi::Function::New(env, GetRngState));
  exports.Set("setRngState", Napi::Function::New(env, SetRngState));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo));
}

}  // namespace arcface
