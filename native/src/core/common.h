// Shared declarations of the arcface-ts addon: the tensor wrapper and value conversions.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/ScalarType.h>

namespace arcface {

// A JS object that owns one at::Tensor. JS subclasses it (src/torch/tensor.ts);
// every tensor the addon returns is created through that subclass's constructor.
class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

  at::Tensor& tensor(Napi::Env env);  // throws if disposed
  bool disposed() const { return !tensor_.defined(); }
  void release();

 private:
  at::Tensor tensor_;
  int64_t accounted_bytes_ = 0;

  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Strides(const Napi::CallbackInfo& info);
  Napi::Value StorageOffset(const Napi::CallbackInfo& info);
  Napi::Value StorageKey(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value Ndim(const Napi::CallbackInfo& info);
  Napi::Value GetRequiresGrad(const Napi::CallbackInfo& info);
  void SetRequiresGrad(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value GetGrad(const Napi::CallbackInfo& info);
  void SetGrad(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value IsLeaf(const Napi::CallbackInfo& info);
  Napi::Value IsContiguous(const Napi::CallbackInfo& info);
  Napi::Value ToBuffer(const Napi::CallbackInfo& info);
  Napi::Value SameTensor(const Napi::CallbackInfo& info);
};

// Per-addon-instance state.
struct AddonData {
  Napi::FunctionReference tensor_class;  // the JS subclass registered by setTensorClass
};

// Wrap a tensor into a new JS Tensor (ownership moves to JS).
Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor);
// The tensor held by a JS Tensor; throws a JS TypeError naming `what` otherwise.
at::Tensor& UnwrapTensor(Napi::Value value, const char* what);
bool IsTensor(Napi::Value value);

// dtype names as the TS API spells them ("float32", "bfloat16", ...).
c10::ScalarType ParseDtype(Napi::Env env, const std::string& name);
const char* DtypeName(c10::ScalarType type);

// IValue <-> JS
Napi::Value IValueToJs(Napi::Env env, const c10::IValue& value);

// Why CUDA cannot be used here, "" when a CUDA device is visible: the addon is built without CUDA
// (and how to rebuild it), or built with CUDA but no device is visible (core/runtime.cc).
std::string CudaUnavailableReason();

// The device `name` names, if this process can use it; else a JS Error starting with `where` that says why
// (not a device, addon built without CUDA, no device visible, index out of range).
c10::Device CheckDevice(Napi::Env env, const std::string& where, const std::string& name);

// Rethrow a C++ exception (c10::Error included) as a JS Error carrying its message.
[[noreturn]] void ThrowAsJs(Napi::Env env, const std::exception& e);

// Module sections (each in its own translation unit to keep compile times down).
void InitDispatch(Napi::Env env, Napi::Object exports);
void InitAutograd(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitRuntime(Napi::Env env, Napi::Object exports);
void InitCpuAllocator(Napi::Env env, Napi::Object exports);
void InitDist(Napi::Env env, Napi::Object exports);
void InitTensorFactories(Napi::Env env, Napi::Object exports);
void InitPartialFc(Napi::Env env, Napi::Object exports);
void InitData(Napi::Env env, Napi::Object exports);
void InitDevice(Napi::Env env, Napi::Object exports);

}  // namespace arcface
