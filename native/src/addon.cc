// Entry point of the addon: registers the tensor class and every module section.
#include "core/common.h"

namespace arcface {

static Napi::Value SetTensorClass(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  data->tensor_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InitCpuAllocator(env, exports);
  exports.Set("TensorBase", TensorWrap::Define(env));
  exports.Set("setTensorClass", Napi::Function::New(env, SetTensorClass));
  InitTensorFactories(env, exports);
  InitDispatch(env, exports);
  InitAutograd(env, exports);
  InitOptim(env, exports);
  InitRuntime(env, exports);
  InitDist(env, exports);
  InitPartialFc(env, exports);
  InitData(env, exports);
  InitDevice(env, exports);
  return exports;
}

}  // namespace arcface

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return arcface::Init(env, exports); }

NODE_API_MODULE(arcface_native, InitAddon)
