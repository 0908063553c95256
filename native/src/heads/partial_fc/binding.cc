// JS access to the Partial FC kernel: `new PartialFcKernel({...})`, one method per phase
// (see kernel.h). src/heads/partial-fc.ts drives the phases; collectives go between them.
#include "core/common.h"
#include "heads/partial_fc/autograd.h"

#include <sys/mman.h>
#include <unistd.h>

namespace arcface {

namespace {

double Num(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("PartialFcKernel: option '") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }

class PartialFcKernel : public Napi::ObjectWrap<PartialFcKernel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PartialFcKernel", {
      InstanceMethod<&PartialFcKernel::Sample>("sample"),
      InstanceMethod<&PartialFcKernel::Logits>("logits"),
      InstanceMethod<&PartialFcKernel::ExpSums>("expSums"),
      InstanceMethod<&PartialFcKernel::Loss>("loss"),
      InstanceMethod<&PartialFcKernel::RowGrads>("rowGrads"),
      InstanceMethod<&PartialFcKernel::Accumulate>("accumulate"),
      InstanceMethod<&PartialFcKernel::ScaleGrad>("scaleGrad"),
      InstanceMethod<&PartialFcKernel::DiscardGrad>("discardGrad"),
      InstanceMethod<&PartialFcKernel::SgdStep>("sgdStep"),
      InstanceMethod<&PartialFcKernel::AdamwStep>("adamwStep"),
      InstanceMethod<&PartialFcKernel::SampledIndex>("sampledIndex"),
      InstanceMethod<&PartialFcKernel::Targets>("targets"),
      InstanceMethod<&PartialFcKernel::BufferBytes>("bufferBytes"),
      InstanceMethod<&PartialFcKernel::Dispose>("dispose"),
    });
  }

  explicit PartialFcKernel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PartialFcKernel>(info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    const Napi::Value logits = o.Get("logits");
    const std::string mode = logits.IsUndefined() ? "keep" : logits.IsString() ? logits.As<Napi::String>().Utf8Value() : "";
    if (mode != "keep" && mode != "recompute") {
      throw Napi::TypeError::New(env, "PartialFcKernel: option 'logits' must be 'keep' or 'recompute'");
    }
    Guard(env, [&] {
      kernel_ = c10::make_intrusive<pfc::Kernel>(static_cast<int64_t>(Num(o, "embeddingSize")),
                                                 ParseDtype(env, o.Get("dtype").As<Napi::String>().Utf8Value()),
                                                 static_cast<int64_t>(Num(o, "tileRows")), mode == "recompute");
    });
  }

 private:
  pfc::Kernel& kernel(Napi::Env env) {
    if (!kernel_) throw Napi::Error::New(env, "PartialFcKernel has been disposed");
    return *kernel_;
  }

  // c10::Error and friends become JS errors carrying their message.
  template <typename Fn>
  static auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      ThrowAsJs(env, e);
    }
  }

  Napi::Value Sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor& labels = UnwrapTensor(info[0], "sample labels");
    return Napi::Number::New(env, static_cast<double>(Guard(env, [&] {
      return kernel(env).Sample(labels, Int(info, 1), Int(info, 2), Int(info, 3));
    })));
  }

  Napi::Value Logits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor& embeddings = UnwrapTensor(info[0], "logits embeddings");
    at::Tensor& weight = UnwrapTensor(info[1], "logits weight");
    auto o = info[2].As<Napi::Object>();
    pfc::Margin m{Num(o, "s"), Num(o, "m1"), Num(o, "m2"), Num(o, "m3"), Num(o, "filter")};
    return WrapTensor(env, Guard(env, [&] { return kernel(env).Logits(embeddings, weight, m); }));
  }

  Napi::Value ExpSums(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor& row_max = UnwrapTensor(info[0], "expSums rowMax");
    return WrapTensor(env, Guard(env, [&] { return kernel(env).ExpSums(row_max); }));
  }

  Napi::Value Loss(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor& embeddings = UnwrapTensor(info[0], "loss embeddings");
    at::Tensor& sums = UnwrapTensor(info[1], "loss sums");
    kernel(env);
    return WrapTensor(env, Guard(env, [&] { return pfc::LossWithBackward(kernel_, embeddings, sums); }));
  }

  Napi::Value RowGrads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return WrapTensor(env, Guard(env, [&] { return kernel(env).RowGrads(); }));
  }

  Napi::Value Accumulate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Guard(env, [&] { kernel(env).Accumulate(); });
    return Napi::Number::New(env, static_cast<double>(kernel(env).accumulated_rows()));
  }

  Napi::Value DiscardGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Guard(env, [&] { kernel(env).DiscardGrad(); });
    return env.Undefined();
  }

  Napi::Value ScaleGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "PartialFcKernel.scaleGrad: expected a number");
    const double factor = info[0].As<Napi::Number>().DoubleValue();
    Guard(env, [&] { kernel(env).ScaleGrad(factor); });
    return env.Undefined();
  }

  Napi::Value SgdStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor buf = IsTensor(info[0]) ? UnwrapTensor(info[0], "sgdStep momentum buffer") : at::Tensor();
    auto o = info[1].As<Napi::Object>();
    pfc::SgdOptions opt{Num(o, "lr"), Num(o, "momentum"), Num(o, "weightDecay")};
    Guard(env, [&] { kernel(env).SgdStep(buf, opt); });
    return env.Undefined();
  }

  Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor& exp_avg = UnwrapTensor(info[0], "adamwStep expAvg");
    at::Tensor& exp_avg_sq = UnwrapTensor(info[1], "adamwStep expAvgSq");
    at::Tensor& steps = UnwrapTensor(info[2], "adamwStep steps");
    auto o = info[3].As<Napi::Object>();
    pfc::AdamwOptions opt{Num(o, "lr"), Num(o, "beta1"), Num(o, "beta2"), Num(o, "eps"), Num(o, "weightDecay")};
    Guard(env, [&] { kernel(env).AdamwStep(exp_avg, exp_avg_sq, steps, opt); });
    return env.Undefined();
  }

  Napi::Value SampledIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return WrapTensor(env, Guard(env, [&] { return kernel(env).SampledIndex(); }));
  }

  Napi::Value Targets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return WrapTensor(env, Guard(env, [&] { return kernel(env).Targets(); }));
  }

  Napi::Value BufferBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Napi::Number::New(env, static_cast<double>(kernel(env).BufferBytes()));
  }

  // Frees the buffers now; an autograd graph still holding the kernel keeps it until it goes.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    kernel_.reset();
    return info.Env().Undefined();
  }

  c10::intrusive_ptr<pfc::Kernel> kernel_;
};

// adviseHugePages(tensor): asks the kernel to back the tensor's memory with transparent huge pages
// (THP is often "madvise" only). Call before first touching it. For the shard and its optimizer
// state, read a few rows at random each step: 2 MiB pages make first touch several times faster
// on VMs and spare the TLB. Advisory: errors are ignored. Returns whether the advice was taken.
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  at::Tensor& t = UnwrapTensor(info[0], "adviseHugePages tensor");
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t start = (begin + page - 1) / page * page;
  const uintptr_t end = (begin + t.numel() * t.element_size()) / page * page;
  bool taken = false;
#ifdef MADV_HUGEPAGE
  if (end > start) taken = madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0;
#endif
  return Napi::Boolean::New(info.Env(), taken);
}

}  // namespace

void InitPartialFc(Napi::Env env, Napi::Object exports) {
  exports.Set("PartialFcKernel", PartialFcKernel::Define(env));
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePages));
}

}  // namespace arcface
