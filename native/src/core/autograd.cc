// Thread-local autograd and autocast switches. JS wraps them in scopes (noGrad, autocast) that
// restore the previous state, so a throw inside the scope cannot leave them flipped.
#include "core/common.h"
#include "core/torch_version.h"

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

namespace arcface {

namespace {

// The autocast switches per device: 2.4 made them device-generic (is_autocast_enabled(kCUDA), ...)
// and deprecated the per-device names, which then warn on every call; 1.13 has only those names.
#if ARCFACE_TORCH_AT_LEAST(2, 4)
bool AutocastEnabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void SetAutocastEnabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
c10::ScalarType AutocastDtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void SetAutocastDtype(c10::DeviceType d, c10::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool AutocastEnabled(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void SetAutocastEnabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(on);
  } else {
    at::autocast::set_enabled(on);
  }
}
c10::ScalarType AutocastDtype(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void SetAutocastDtype(c10::DeviceType d, c10::ScalarType t) {
  if (d == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(t);
  } else {
    at::autocast::set_autocast_gpu_dtype(t);
  }
}
#endif

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

// autocastState() → {cpu, cpuDtype, cuda, cudaDtype}
Napi::Value AutocastState(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("cpu", AutocastEnabled(c10::DeviceType::CPU));
  out.Set("cpuDtype", DtypeName(AutocastDtype(c10::DeviceType::CPU)));
  out.Set("cuda", AutocastEnabled(c10::DeviceType::CUDA));
  out.Set("cudaDtype", DtypeName(AutocastDtype(c10::DeviceType::CUDA)));
  return out;
}

// setAutocast({cpu, cpuDtype, cuda, cudaDtype}); leaving the outermost region clears the cast cache.
Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = info[0].As<Napi::Object>();
  SetAutocastDtype(c10::DeviceType::CPU, ParseDtype(env, s.Get("cpuDtype").As<Napi::String>().Utf8Value()));
  SetAutocastDtype(c10::DeviceType::CUDA, ParseDtype(env, s.Get("cudaDtype").As<Napi::String>().Utf8Value()));
  SetAutocastEnabled(c10::DeviceType::CPU, s.Get("cpu").ToBoolean().Value());
  SetAutocastEnabled(c10::DeviceType::CUDA, s.Get("cuda").ToBoolean().Value());
  return env.Undefined();
}

Napi::Value AutocastEnter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::autocast::increment_nesting());
}

Napi::Value AutocastExit(const Napi::CallbackInfo& info) {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  return info.Env().Undefined();
}

}  // namespace

void InitAutograd(Napi::Env env, Napi::Object exports) {
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("autocastState", Napi::Function::New(env, AutocastState));
  exports.Set("setAutocast", Napi::Function::New(env, SetAutocast));
  exports.Set("autocastEnter", Napi::Function::New(env, AutocastEnter));
  exports.Set("autocastExit", Napi::Function::New(env, AutocastExit));
}

}  // namespace arcface
