// Optimizer-side work over whole parameter lists in one native call each, instead of a handful of
// JS→C++ op calls per parameter: the SGD and AdamW steps (torch.optim), gradient clipping by total
// norm (torch.nn.utils.clip_grad_norm_) and GradScaler's unscale + inf check. Semantics follow
// PyTorch exactly. On a GPU none of them reads a value back to the host: the callers decide when
// a number is needed (GradScaler reads its found-inf flag once per step).
#include "core/common.h"
#include "core/torch_version.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

namespace arcface {

namespace {

double Num(Napi::Object o, const char* key) { return o.Get(key).As<Napi::Number>().DoubleValue(); }

// The parameters of a JS array that have a gradient: the tensors, their gradients and their
// positions in the array (for the caller's per-parameter state lists).
struct WithGrad {
  std::vector<at::Tensor> params, grads;
  std::vector<uint32_t> index;
};

WithGrad ParamsWithGrad(Napi::Value list, const char* what) {
  if (!list.IsArray()) throw Napi::TypeError::New(list.Env(), std::string(what) + " must be an array of tensors");
  auto a = list.As<Napi::Array>();
  WithGrad out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const at::Tensor& p = UnwrapTensor(a.Get(i), what);
    if (!p.grad().defined()) continue;
    out.params.push_back(p);
    out.grads.push_back(p.grad());
    out.index.push_back(i);
  }
  return out;
}

// The tensors of a JS array at the given positions; `optional`: undefined/null give undefined tensors.
std::vector<at::Tensor> TensorsAt(Napi::Value list, const std::vector<uint32_t>& index, const char* what, bool optional = false) {
  auto a = list.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i : index) {
    Napi::Value v = a.Get(i);
    out.push_back(optional && (v.IsUndefined() || v.IsNull()) ? at::Tensor() : UnwrapTensor(v, what));
  }
  return out;
}

// Positions of `tensors` grouped by (device, dtype) in first-seen order, as torch.optim's
// _group_tensors_by_device_and_dtype: one multi-tensor kernel takes tensors of one device and dtype.
std::vector<std::vector<size_t>> GroupByDeviceAndDtype(const std::vector<at::Tensor>& tensors) {
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto same = [&](const std::vector<size_t>& g) {
      return tensors[g[0]].device() == tensors[i].device() && tensors[g[0]].scalar_type() == tensors[i].scalar_type();
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) groups.push_back({i});
    else it->push_back(i);
  }
  return groups;
}

template <typename T>
std::vector<T> Pick(const std::vector<T>& v, const std::vector<size_t>& index) {
  std::vector<T> out;
  out.reserve(index.size());
  for (size_t i : index) out.push_back(v[i]);
  return out;
}

// ---- SGD ----------------------------------------------------------------------------------------

struct SgdOptions {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};

// torch.optim's _single_tensor_sgd. An undefined bufs[i] is created from the first gradient.
void SgdPerParameter(const WithGrad& w, std::vector<at::Tensor>& bufs, const SgdOptions& o) {
  for (size_t i = 0; i < w.params.size(); ++i) {
    at::Tensor p = w.params[i];
    at::Tensor d_p = o.weight_decay != 0 ? w.grads[i].add(p, o.weight_decay) : w.grads[i];
    if (o.momentum != 0) {
      if (!bufs[i].defined()) bufs[i] = d_p.clone();
      else bufs[i].mul_(o.momentum).add_(d_p, 1 - o.dampening);
      d_p = o.nesterov ? d_p.add(bufs[i], o.momentum) : bufs[i];
    }
    p.add_(d_p, -o.lr);
  }
}

// torch.optim's _multi_tensor_sgd: the same elementwise ops as multi-tensor kernels per (device,
// dtype). Unlike PyTorch, Nesterov does not add into the caller's gradients in place (same result).
void SgdForeach(const WithGrad& w, std::vector<at::Tensor>& bufs, const SgdOptions& o) {
  for (const auto& group : GroupByDeviceAndDtype(w.params)) {
    std::vector<at::Tensor> params = Pick(w.params, group), d_p = Pick(w.grads, group);
    if (o.weight_decay != 0) d_p = at::_foreach_add(d_p, params, o.weight_decay);
    if (o.momentum != 0) {
      std::vector<at::Tensor> b = Pick(bufs, group);
      if (std::all_of(b.begin(), b.end(), [](const at::Tensor& t) { return t.defined(); })) {
        at::_foreach_mul_(b, o.momentum);
        at::_foreach_add_(b, d_p, 1 - o.dampening);
      } else {
        for (size_t k = 0; k < b.size(); ++k) {
          if (!b[k].defined()) b[k] = bufs[group[k]] = d_p[k].clone();
          else b[k].mul_(o.momentum).add_(d_p[k], 1 - o.dampening);
        }
      }
      d_p = o.nesterov ? at::_foreach_add(d_p, b, o.momentum) : b;
    }
    at::_foreach_add_(params, d_p, -o.lr);
  }
}

// sgdStep(params, momentumBuffers, {lr, momentum, dampening, weightDecay, nesterov, foreach}) → created
// Parameters without a gradient are skipped. A missing (undefined) buffer is created from the first
// gradient, as torch.optim.SGD does; the returned array holds the new buffers (undefined elsewhere).
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[2].As<Napi::Object>();
  const SgdOptions opt{Num(o, "lr"), Num(o, "momentum"), Num(o, "dampening"), Num(o, "weightDecay"), o.Get("nesterov").ToBoolean().Value()};
  const bool foreach = o.Get("foreach").ToBoolean().Value();
  try {
    c10::NoGradGuard no_grad;
    WithGrad w = ParamsWithGrad(info[0], "sgdStep params");
    std::vector<at::Tensor> bufs = TensorsAt(info[1], w.index, "sgdStep momentum buffer", /*optional=*/true);
    std::vector<bool> given(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) given[i] = bufs[i].defined();
    (foreach ? SgdForeach : SgdPerParameter)(w, bufs, opt);
    auto created = Napi::Array::New(env, info[0].As<Napi::Array>().Length());
    for (size_t i = 0; i < bufs.size(); ++i) {
      if (!given[i] && bufs[i].defined()) created.Set(w.index[i], WrapTensor(env, bufs[i]));
    }
    return created;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

// ---- AdamW --------------------------------------------------------------------------------------

struct AdamwOptions {
  double lr, beta1, beta2, eps, weight_decay;
};

// The host-side scalars of one parameter's update at step t (t counts from 1).
struct BiasCorrection {
  double step_size;  // −lr / (1 − β1^t)
  double sqrt2;      // √(1 − β2^t)
};

BiasCorrection BiasCorrectionAt(const AdamwOptions& o, double t) {
  return {-o.lr / (1 - std::pow(o.beta1, t)), std::sqrt(1 - std::pow(o.beta2, t))};
}

struct AdamwState {
  std::vector<at::Tensor> exp_avgs, exp_avg_sqs;
  std::vector<double> steps;
};

// torch.optim's _single_tensor_adamw (1.13's arithmetic: m = β1·m + (1 − β1)·g; 2.x writes it as a lerp).
void AdamwPerParameter(const WithGrad& w, AdamwState& s, const AdamwOptions& o) {
  for (size_t i = 0; i < w.params.size(); ++i) {
    at::Tensor p = w.params[i];
    const at::Tensor& g = w.grads[i];
    p.mul_(1 - o.lr * o.weight_decay);
    s.exp_avgs[i].mul_(o.beta1).add_(g, 1 - o.beta1);
    s.exp_avg_sqs[i].mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    const BiasCorrection c = BiasCorrectionAt(o, s.steps[i]);
    at::Tensor denom = (s.exp_avg_sqs[i].sqrt() / c.sqrt2).add_(o.eps);
    p.addcdiv_(s.exp_avgs[i], denom, c.step_size);
  }
}

// torch.optim's _multi_tensor_adamw: the same ops as multi-tensor kernels per (device, dtype).
void AdamwForeach(const WithGrad& w, AdamwState& s, const AdamwOptions& o) {
  for (const auto& group : GroupByDeviceAndDtype(w.params)) {
    std::vector<at::Tensor> params = Pick(w.params, group), grads = Pick(w.grads, group);
    std::vector<at::Tensor> exp_avgs = Pick(s.exp_avgs, group), exp_avg_sqs = Pick(s.exp_avg_sqs, group);
    std::vector<at::Scalar> step_size, sqrt2;
    for (size_t i : group) {
      const BiasCorrection c = BiasCorrectionAt(o, s.steps[i]);
      step_size.emplace_back(c.step_size);
      sqrt2.emplace_back(c.sqrt2);
    }
    at::_foreach_mul_(params, 1 - o.lr * o.weight_decay);
    at::_foreach_mul_(exp_avgs, o.beta1);
    at::_foreach_add_(exp_avgs, grads, 1 - o.beta1);
    at::_foreach_mul_(exp_avg_sqs, o.beta2);
    at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - o.beta2);
    std::vector<at::Tensor> denom = at::_foreach_sqrt(exp_avg_sqs);
    at::_foreach_div_(denom, sqrt2);
    at::_foreach_add_(denom, o.eps);
    at::_foreach_addcdiv_(params, exp_avgs, denom, step_size);
  }
}

// adamwStep(params, expAvgs, expAvgSqs, steps, {lr, beta1, beta2, eps, weightDecay, foreach})
// State tensors are given (zeros at first); steps[i] is the step number after this update.
// Parameters without a gradient are skipped.
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[4].As<Napi::Object>();
  const AdamwOptions opt{Num(o, "lr"), Num(o, "beta1"), Num(o, "beta2"), Num(o, "eps"), Num(o, "weightDecay")};
  const bool foreach = o.Get("foreach").ToBoolean().Value();
  try {
    c10::NoGradGuard no_grad;
    WithGrad w = ParamsWithGrad(info[0], "adamwStep params");
    AdamwState s{TensorsAt(info[1], w.index, "adamwStep expAvg"), TensorsAt(info[2], w.index, "adamwStep expAvgSq"), {}};
    auto steps = info[3].As<Napi::Array>();
    for (uint32_t i : w.index) s.steps.push_back(steps.Get(i).As<Napi::Number>().DoubleValue());
    (foreach ? AdamwForeach : AdamwPerParameter)(w, s, opt);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
  return env.Undefined();
}

// ---- clip_grad_norm_ ----------------------------------------------------------------------------

// torch.nn.utils.clip_grad_norm_ takes the multi-tensor kernels on devices that have fast ones
// (CUDA; on the CPU they would loop over the same per-tensor ops).
bool ForeachDevice(const at::Device& device) { return !device.is_cpu(); }

// clipGradNorm(params, maxNorm, normType) → the total norm before clipping, a 0-d tensor on the first
// gradient's device (0 on the CPU if no parameter has a gradient): the norm of the per-gradient norms.
// Nothing is read back to the host: gradients are multiplied by min(1, maxNorm / (total + 1e-6)) as a tensor.
Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double max_norm = info[1].As<Napi::Number>().DoubleValue();
  const double norm_type = info[2].As<Napi::Number>().DoubleValue();
  try {
    c10::NoGradGuard no_grad;
    const std::vector<at::Tensor> grads = ParamsWithGrad(info[0], "clipGradNorm params").grads;
    if (grads.empty()) return WrapTensor(env, at::zeros({}, at::kFloat));
    const auto groups = GroupByDeviceAndDtype(grads);
    const at::Device first_device = grads[0].device();
    std::vector<at::Tensor> norms;
    for (const auto& group : groups) {
      std::vector<at::Tensor> g = Pick(grads, group);
      if (ForeachDevice(g[0].device())) {
        for (auto& n : at::_foreach_norm(g, norm_type)) norms.push_back(n.to(first_device));
      } else {
        for (const auto& t : g) norms.push_back(at::linalg_vector_norm(t, norm_type).to(first_device));
      }
    }
    at::Tensor total = at::linalg_vector_norm(at::stack(norms), norm_type);
    // Python's max_norm / (total + 1e-6) is (total + 1e-6).reciprocal() * max_norm (C++'s operator/ divides);
    // min(·, 1) is clamp(max=1), which 1.13 lacks for float16 on the CPU.
    at::Tensor coef = (total + 1e-6).reciprocal().mul(max_norm);
    coef = at::minimum(coef, at::ones_like(coef));
    for (const auto& group : groups) {
      std::vector<at::Tensor> g = Pick(grads, group);
      at::Tensor coef_here = coef.to(g[0].device());
#if ARCFACE_TORCH_AT_LEAST(2, 2)  // _foreach_mul_(TensorList, Tensor): no host read of the coefficient
      if (ForeachDevice(g[0].device())) {
        at::_foreach_mul_(g, coef_here);
        continue;
      }
#endif
      for (auto& t : g) t.mul_(coef_here);
    }
    return WrapTensor(env, total);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

// ---- GradScaler.unscale_ ------------------------------------------------------------------------

// Whether libtorch has a kernel for _amp_foreach_non_finite_check_and_unscale_ on this device:
// CUDA always, the CPU since torch 2.3 (pytorch#109281).
bool HasUnscaleKernel(const at::Device& device) {
#ifdef ARCFACE_CUDA
  if (device.is_cuda()) return true;
#endif
#if ARCFACE_TORCH_AT_LEAST(2, 3)
  if (device.is_cpu()) return true;
#endif
  return false;
}

// Sets found_inf to 1 if g holds inf/NaN: then its min or max is non-finite (both propagate NaN).
// aminmax reads g once and allocates nothing of its size (isfinite(g).all() is ~5× slower on the CPU).
void FlagNonFinite(const at::Tensor& g, at::Tensor& found_inf) {
  if (g.numel() == 0) return;
  auto [lo, hi] = at::aminmax(g);
  found_inf.masked_fill_(at::isfinite(lo).logical_and_(at::isfinite(hi)).logical_not_(), 1.0);
}

// _amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale) for one device and dtype:
// found_inf (float32, 0-d) is set to 1 if any gradient holds inf/NaN — checked on the values as
// given, before unscaling, like the kernel — and each gradient is multiplied by the float32
// inv_scale in float32 (float64 for float64; float16/bfloat16 are widened and rounded back).
// Without the kernel, the same arithmetic from plain ops.
void NonFiniteCheckAndUnscale(std::vector<at::Tensor>& grads, at::Tensor& found_inf, const at::Tensor& inv_scale) {
  if (HasUnscaleKernel(grads[0].device())) {
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
    return;
  }
  for (auto& g : grads) {
    const auto dtype = g.scalar_type();
    if (dtype == at::kHalf || dtype == at::kBFloat16) {
      at::Tensor wide = g.to(at::kFloat);  // exact; 1.13 has no float16 aminmax on the CPU
      FlagNonFinite(wide, found_inf);
      g.copy_(wide.mul_(inv_scale));
    } else {
      FlagNonFinite(g, found_inf);
      g.mul_(inv_scale);
    }
  }
}

// unscaleGrads(params, invScale) → found_inf: a 0-d float32 tensor on the first gradient's
// device, nonzero if any gradient held inf/NaN (GradScaler._unscale_grads_; one flag per device,
// summed). Gradients are grouped by device and dtype, one fused pass each; nothing is read back here:
// the caller reads the flag once, when it decides whether to step.
Napi::Value UnscaleGrads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const float inv_scale = static_cast<float>(info[1].As<Napi::Number>().DoubleValue());
  try {
    c10::NoGradGuard no_grad;
    const std::vector<at::Tensor> grads = ParamsWithGrad(info[0], "unscaleGrads params").grads;
    if (grads.empty()) return WrapTensor(env, at::zeros({}, at::kFloat));
    struct PerDevice {
      at::Device device;
      at::Tensor found_inf, inv_scale;
    };
    std::vector<PerDevice> devices;
    for (const auto& group : GroupByDeviceAndDtype(grads)) {
      std::vector<at::Tensor> g = Pick(grads, group);
      const at::Device device = g[0].device();
      auto it = std::find_if(devices.begin(), devices.end(), [&](const PerDevice& d) { return d.device == device; });
      if (it == devices.end()) {
        const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
        devices.push_back({device, at::zeros({}, f32), at::full({}, inv_scale, f32)});
        it = devices.end() - 1;
      }
      NonFiniteCheckAndUnscale(g, it->found_inf, it->inv_scale);
    }
    at::Tensor found_inf = devices[0].found_inf;
    for (size_t i = 1; i < devices.size(); ++i) found_inf.add_(devices[i].found_inf.to(found_inf.device()));
    return WrapTensor(env, found_inf);
  } catch (const Napi::Error&) {
    throw;
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
