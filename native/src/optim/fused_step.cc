// Fused optimizer steps: one native call updates every parameter of a group, instead of a
// handful of JS→C++ op calls per parameter. Semantics follow torch.optim (SGD, AdamW) exactly.
#include "core/common.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace arcface {

namespace {

std::vector<at::Tensor*> TensorArray(Napi::Value v, const char* what) {
  auto a = v.As<Napi::Array>();
  std::vector<at::Tensor*> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out[i] = &UnwrapTensor(a.Get(i), what);
  return out;
}

double Num(Napi::Object o, const char* key) { return o.Get(key).As<Napi::Number>().DoubleValue(); }

// sgdStep(params, momentumBuffers, {lr, momentum, dampening, weightDecay, nesterov}) → momentumBuffers
// A missing (undefined) buffer is created from the first gradient, as torch.optim.SGD does;
// the returned array holds the new buffers (undefined where the given one was kept).
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = TensorArray(info[0], "sgdStep params");
  auto bufs_js = info[1].As<Napi::Array>();
  auto o = info[2].As<Napi::Object>();
  const double lr = Num(o, "lr"), momentum = Num(o, "momentum"), dampening = Num(o, "dampening");
  const double weight_decay = Num(o, "weightDecay");
  const bool nesterov = o.Get("nesterov").ToBoolean().Value();
  auto created = Napi::Array::New(env, params.size());
  try {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = *params[i];
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      at::Tensor d_p = weight_decay != 0 ? g.add(p, weight_decay) : g;
      if (momentum != 0) {
        Napi::Value buf_js = bufs_js.Get(i);
        at::Tensor buf;
        if (buf_js.IsUndefined() || buf_js.IsNull()) {
          buf = d_p.clone();
          created.Set(i, WrapTensor(env, buf));
        } else {
          buf = UnwrapTensor(buf_js, "sgdStep momentum buffer");
          buf.mul_(momentum).add_(d_p, 1 - dampening);
        }
        d_p = nesterov ? d_p.add(buf, momentum) : buf;
      }
      p.add_(d_p, -lr);
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  return created;
}

// adamwStep(params, expAvgs, expAvgSqs, steps, {lr, beta1, beta2, eps, weightDecay})
// State tensors are given (zeros at first); steps[i] is the step number after this update.
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = TensorArray(info[0], "adamwStep params");
  auto exp_avgs = TensorArray(info[1], "adamwStep expAvg");
  auto exp_avg_sqs = TensorArray(info[2], "adamwStep expAvgSq");
  auto steps = info[3].As<Napi::Array>();
  auto o = info[4].As<Napi::Object>();
  const double lr = Num(o, "lr"), beta1 = Num(o, "beta1"), beta2 = Num(o, "beta2");
  const double eps = Num(o, "eps"), weight_decay = Num(o, "weightDecay");
  try {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = *params[i];
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      const double step = steps.Get(i).As<Napi::Number>().DoubleValue();
      p.mul_(1 - lr * weight_decay);
      exp_avgs[i]->mul_(beta1).add_(g, 1 - beta1);
      exp_avg_sqs[i]->mul_(beta2).addcmul_(g, g, 1 - beta2);
      const double bias_correction1 = 1 - std::pow(beta1, step);
      const double bias_correction2 = 1 - std::pow(beta2, step);
      at::Tensor denom = (exp_avg_sqs[i]->sqrt() / std::sqrt(bias_correction2)).add_(eps);
      p.addcdiv_(*exp_avgs[i], denom, -lr / bias_correction1);
    }
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  return env.Undefined();
}

// clipGradNorm(params, maxNorm, normType) → total norm before clipping (torch.nn.utils.clip_grad_norm_).
Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = TensorArray(info[0], "clipGradNorm params");
  const double max_norm = info[1].As<Napi::Number>().DoubleValue();
  const double norm_type = info[2].As<Napi::Number>().DoubleValue();
  try {
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> grads, norms;
    for (auto* p : params) {
      if (p->grad().defined()) grads.push_back(p->grad());
    }
    if (grads.empty()) return Napi::Number::New(env, 0);
    for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g, norm_type));
    at::Tensor total = std::isinf(norm_type) ? at::stack(norms).max() : at::linalg_vector_norm(at::stack(norms), norm_type);
    at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : grads) g.mul_(coef.to(g.device()));
    return Napi::Number::New(env, total.item<double>());
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

// unscaleGrads(params, invScale) → true if any gradient holds inf/NaN (GradScaler.unscale_).
Napi::Value UnscaleGrads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = TensorArray(info[0], "unscaleGrads params");
  const double inv_scale = info[1].As<Napi::Number>().DoubleValue();
  try {
    c10::NoGradGuard no_grad;
    bool found_inf = false;
    for (auto* p : params) {
      at::Tensor g = p->grad();
      if (!g.defined()) continue;
      g.mul_(inv_scale);
      if (!found_inf && !g.isfinite().all().item<bool>()) found_inf = true;
    }
    return Napi::Boolean::New(env, found_inf);
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdStep", Napi::Function::New(env, SgdStep));
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep));
  exports.Set("clipGradNorm", Napi::Function::New(env, ClipGradNorm));
  exports.Set("unscaleGrads", Napi::Function::New(env, UnscaleGrads));
}

}  // namespace arcface
