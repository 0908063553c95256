// Thread-local autograd and autocast switches. JS wraps them in scopes (noGrad, autocast) that
// restore the previous state, so a throw inside the scope cannot leave them flipped.
#include "core/common.h"

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

namespace arcface {

namespace {

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
  out.Set("cpu", at::autocast::is_cpu_enabled());
  out.Set("cpuDtype", DtypeName(at::autocast::get_autocast_cpu_dtype()));
  out.Set("cuda", at::autocast::is_enabled());
  out.Set("cudaDtype", DtypeName(at::autocast::get_autocast_gpu_dtype()));
  return out;
}

// setAutocast({cpu, cpuDtype, cuda, cudaDtype}); leaving the outermost region clears the cast cache.
Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = info[0].As<Napi::Object>();
  at::autocast::set_autocast_cpu_dtype(ParseDtype(env, s.Get("cpuDtype").As<Napi::String>().Utf8Value()));
  at::autocast::set_autocast_gpu_dtype(ParseDtype(env, s.Get("cudaDtype").As<Napi::String>().Utf8Value()));
  at::autocast::set_cpu_enabled(s.Get("cpu").ToBoolean().Value());
  at::autocast::set_enabled(s.Get("cuda").ToBoolean().Value());
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
