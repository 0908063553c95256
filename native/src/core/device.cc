// Devices: one check with one message for every place a device string enters (op arguments, generators,
// modules moved with to()), and in-place moves of a tensor's data (Module.to keeps its Parameter objects).
#include "core/common.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/Device.h>

#ifdef ARCFACE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace arcface {

c10::Device CheckDevice(Napi::Env env, const std::string& where, const std::string& name) {
  c10::Device device = c10::kCPU;
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Napi::Error::New(env, where + ": '" + name + "' is not a device (use 'cpu', 'cuda' or 'cuda:N')");
  }
  if (device.is_cpu() || device.is_meta()) return device;  // meta: shapes only, no memory (tests, planning)
  if (!device.is_cuda()) throw Napi::Error::New(env, where + ": device '" + name + "' is not supported (use 'cpu', 'cuda' or 'cuda:N')");
  const std::string why = CudaUnavailableReason();
  if (!why.empty()) throw Napi::Error::New(env, where + ": device '" + name + "' is not available: " + why);
  const int64_t count = static_cast<int64_t>(at::getNumGPUs());
  if (device.has_index() && device.index() >= count) {
    throw Napi::Error::New(env, where + ": device '" + name + "' is not available: " + std::to_string(count) +
                                    " CUDA device(s) visible (cuda:0 … cuda:" + std::to_string(count - 1) + ")");
  }
  return device;
}

namespace {

// checkDevice(name, where) → the device's canonical name ('cuda' stays 'cuda'); throws the one message,
// starting with `where` (who asked), otherwise.
Napi::Value CheckDeviceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "checkDevice: a device string such as 'cpu' or 'cuda:0'");
  const std::string where = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "arcface-ts";
  return Napi::String::New(env, CheckDevice(env, where, info[0].As<Napi::String>().Utf8Value()).str());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  const bool has = at::detail::getCUDAHooks().hasCUDA();
  return Napi::Number::New(info.Env(), has ? static_cast<double>(at::getNumGPUs()) : 0);
}

// setData(tensor, data): tensor now holds data's storage, shape, dtype and device; the JS object, its
// requiresGrad and its place in modules and optimizers stay (PyTorch's `param.data = …`).
Napi::Value SetData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor& target = UnwrapTensor(info[0], "setData tensor");
  const at::Tensor& data = UnwrapTensor(info[1], "setData data");
  try {
    target.set_data(data);
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  return env.Undefined();
}

// The optional device argument info[i] of synchronize/deviceMemory ('cpu' when absent), checked; a bare
// 'cuda' is the current CUDA device, as torch.cuda.synchronize() and memory_allocated() take it.
c10::Device DeviceArgument(const Napi::CallbackInfo& info, size_t i, const std::string& where) {
  if (!info[i].IsUndefined() && !info[i].IsString()) throw Napi::TypeError::New(info.Env(), where + ": the device must be a string");
  c10::Device device = CheckDevice(info.Env(), where, info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "cpu");
#ifdef ARCFACE_CUDA
  if (device.is_cuda() && !device.has_index()) device = c10::Device(c10::kCUDA, c10::cuda::current_device());
#endif
  return device;
}

// synchronize(device): waits for the work queued on a GPU (timing it needs this; ops return at launch).
// On the CPU there is nothing to wait for.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  [[maybe_unused]] const c10::Device device = DeviceArgument(info, 0, "synchronize");
#ifdef ARCFACE_CUDA
  if (device.is_cuda()) {
    try {
      c10::cuda::CUDAGuard guard(device.index());
      c10::cuda::device_synchronize();
    } catch (const std::exception& e) {
      ThrowAsJs(env, e);
    }
  }
#endif
  return env.Undefined();
}

// deviceMemory(device, resetPeak) → {allocated, peakAllocated, reserved} bytes of the GPU's caching
// allocator (torch.cuda.memory_allocated / max_memory_allocated / memory_reserved); undefined on the CPU.
Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  [[maybe_unused]] const c10::Device device = DeviceArgument(info, 0, "deviceMemory");
#ifdef ARCFACE_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    auto out = Napi::Object::New(env);
    out.Set("allocated", static_cast<double>(stats.allocated_bytes[0].current));
    out.Set("peakAllocated", static_cast<double>(stats.allocated_bytes[0].peak));
    out.Set("reserved", static_cast<double>(stats.reserved_bytes[0].current));
    if (info[1].ToBoolean().Value()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
    return out;
  }
#endif
  return env.Undefined();
}

}  // namespace

void InitDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("checkDevice", Napi::Function::New(env, CheckDeviceJs));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("setData", Napi::Function::New(env, SetData));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("deviceMemory", Napi::Function::New(env, DeviceMemory));
}

}  // namespace arcface
