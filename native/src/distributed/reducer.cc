// DistributedDataParallel's gradient buckets, all-reduced while backward still runs, as c10d's
// Reducer does for torch DDP: a post-hook on each parameter's gradient accumulator marks its
// gradient landed, and once a bucket's last gradient has landed the bucket is flattened (and
// compressed, if asked) and its all-reduce launched. Buckets launch in index order, the same on
// every rank: gloo pairs collectives by the order they are issued. Everything during backward stays
// in C++ — JS cannot run on autograd threads (a CUDA backward runs on device threads; a CPU one on
// the calling thread) — and a mutex guards the state either way. finish() on the JS thread
// launches what backward did not (parameters without a gradient count as zeros), waits for every
// bucket and writes the means into .grad.
#include "core/common.h"
#include "core/torch_version.h"
#include "distributed/process_group.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace arcface {

namespace {

// libtorch 1.13 hands accumulators out as std::shared_ptr<Node>, 2.x as c10::intrusive_ptr<Node>.
using Accumulator = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

class Reducer;

// Tells the reducer that parameter `param`'s gradient has been accumulated into its .grad.
class GradientLanded : public torch::autograd::FunctionPostHook {
 public:
  GradientLanded(Reducer* reducer, size_t param) : reducer_(reducer), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override;

 private:
  Reducer* reducer_;  // the reducer removes this hook before it goes
  size_t param_;
};

struct Param {
  at::Tensor tensor;
  size_t bucket = 0;
  // Held, so that the hook outlives each iteration's graph (the variable keeps only a weak pointer).
  Accumulator accumulator;
  uintptr_t hook = 0;
  bool landed = false;
};

struct Bucket {
  std::vector<size_t> params;  // indexes into Reducer::params_, in bucket order
  size_t pending = 0;          // gradients still to land before it can be launched
  at::Tensor flat;             // the gradients flattened; the mean once finished
  at::Tensor wire;             // what is all-reduced: flat itself, or its compressed copy
  std::function<void()> wait;  // set once launched
};

class Reducer {
 public:
  Reducer(int group, const std::vector<std::vector<at::Tensor>>& buckets, std::optional<at::ScalarType> wire)
      : group_(group), world_size_(DistWorldSize(group)), wire_(wire) {
    for (const auto& tensors : buckets) {
      Bucket bucket;
      for (const at::Tensor& t : tensors) {
        if (!t.requires_grad() || !t.is_leaf()) {
          throw std::invalid_argument("DistributedDataParallel: parameter " + std::to_string(params_.size()) +
                                      " (in bucket order) is not a leaf that requires grad");
        }
        bucket.params.push_back(params_.size());
        params_.emplace_back().tensor = t;
        params_.back().bucket = buckets_.size();
      }
      bucket.pending = bucket.params.size();
      buckets_.push_back(std::move(bucket));
    }
    try {
      for (size_t i = 0; i < params_.size(); ++i) {
        params_[i].accumulator = torch::autograd::impl::grad_accumulator(params_[i].tensor);
        params_[i].hook = params_[i].accumulator->add_post_hook(std::make_unique<GradientLanded>(this, i));
      }
    } catch (...) {
      RemoveHooks();  // no destructor runs for a half-built reducer
      throw;
    }
  }

  ~Reducer() { RemoveHooks(); }

  // Called by each forward: `sync` (outside noSync), the next backward's gradients are all-reduced
  // as they land; otherwise they only accumulate.
  void Prepare(bool sync) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (landed_ > 0) {
      throw std::logic_error(
          "DistributedDataParallel: the gradients of the previous backward were not synced; call syncGradients() "
          "after it, or run the forwards whose gradients only accumulate under noSync()");
    }
    armed_ = sync;
  }

  void OnGradient(size_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!armed_) return;
    Param& p = params_[i];
    Bucket& bucket = buckets_[p.bucket];
    if (p.landed) {
      // A second gradient for it before syncGradients: harmless until its bucket is on the wire.
      if (bucket.wait && late_ < 0) late_ = static_cast<int64_t>(i);
      return;
    }
    p.landed = true;
    ++landed_;
    if (--bucket.pending > 0) return;
    for (; next_ < buckets_.size() && buckets_[next_].pending == 0; ++next_) Launch(buckets_[next_]);
  }

  int InFlight() {
    std::lock_guard<std::mutex> lock(mutex_);
    int n = 0;
    for (const Bucket& b : buckets_) n += b.wait ? 1 : 0;
    return n;
  }

  // On the JS thread, after backward: every gradient becomes the mean over the ranks.
  void Finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    at::NoGradGuard no_grad;
    armed_ = false;
    try {
      for (; next_ < buckets_.size(); ++next_) Launch(buckets_[next_]);
      for (Bucket& b : buckets_) b.wait();
    } catch (...) {
      Reset();  // the first failure is reported; what else is in flight is left to gloo
      throw;
    }
    for (Bucket& b : buckets_) {
      if (wire_) {
        b.flat.copy_(b.wire);
      } else {
        b.flat.div_(static_cast<double>(world_size_));
      }
      int64_t offset = 0;
      for (size_t i : b.params) {
        at::Tensor& param = params_[i].tensor;
        at::Tensor mean = b.flat.narrow(0, offset, param.numel()).view(param.sizes());
        if (param.grad().defined()) {
          param.mutable_grad().copy_(mean);
        } else {
          param.mutable_grad() = mean.clone();
        }
        offset += param.numel();
      }
    }
    const int64_t late = late_;
    Reset();
    if (late >= 0) {
      throw std::logic_error("DistributedDataParallel: parameter " + std::to_string(late) +
                             " (in bucket order) got a second gradient after its bucket's all-reduce had started, so "
                             "its mean misses it; run the forwards whose gradients only accumulate under noSync()");
    }
  }

 private:
  // Flattens the bucket's gradients as they are now (none yet: zeros) and starts its all-reduce.
  void Launch(Bucket& b) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (size_t i : b.params) {
      const at::Tensor& param = params_[i].tensor;
      const at::Tensor& grad = param.grad();
      grads.push_back(grad.defined() ? grad.reshape(-1) : at::zeros({param.numel()}, param.options()));
    }
    b.flat = at::cat(grads);
    // arcface_torch's fp16_compress_hook: divide by the world size, cast, sum, cast back.
    b.wire = wire_ ? b.flat.div(static_cast<double>(world_size_)).to(*wire_) : b.flat;
    b.wait = DistAllReduceSumStart(group_, b.wire);
  }

  void RemoveHooks() {
    for (Param& p : params_) {
      if (p.accumulator) p.accumulator->del_post_hook(p.hook);
      p.accumulator = Accumulator();
    }
  }

  void Reset() {
    for (Param& p : params_) p.landed = false;
    for (Bucket& b : buckets_) {
      b.pending = b.params.size();
      b.flat = at::Tensor();
      b.wire = at::Tensor();
      b.wait = nullptr;
    }
    next_ = 0;
    landed_ = 0;
    late_ = -1;
  }

  const int group_;
  const int world_size_;
  const std::optional<at::ScalarType> wire_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_ = 0;     // the first bucket not yet launched
  size_t landed_ = 0;   // gradients landed since the last finish
  int64_t late_ = -1;   // a parameter whose gradient came again after its bucket was launched
};

torch::autograd::variable_list GradientLanded::operator()(const torch::autograd::variable_list& outputs,
                                                          const torch::autograd::variable_list& /*inputs*/) {
  reducer_->OnGradient(param_);
  return outputs;
}

std::vector<std::unique_ptr<Reducer>> g_reducers;

Reducer& GetReducer(Napi::Env env, Napi::Value id) {
  const uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= g_reducers.size() || !g_reducers[i]) throw Napi::Error::New(env, "DistributedDataParallel was disposed");
  return *g_reducers[i];
}

template <typename F>
Napi::Value Guarded(Napi::Env env, F body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

// reducerCreate(group, buckets: Tensor[][], compression: 'none' | 'float16' | 'bfloat16') → id
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int group = info[0].As<Napi::Number>().Int32Value();
  auto buckets_js = info[1].As<Napi::Array>();
  std::vector<std::vector<at::Tensor>> buckets(buckets_js.Length());
  for (uint32_t b = 0; b < buckets_js.Length(); ++b) {
    auto tensors = buckets_js.Get(b).As<Napi::Array>();
    for (uint32_t i = 0; i < tensors.Length(); ++i) buckets[b].push_back(UnwrapTensor(tensors.Get(i), "DistributedDataParallel bucket"));
  }
  const std::string compression = info[2].As<Napi::String>().Utf8Value();
  std::optional<at::ScalarType> wire;
  if (compression != "none") wire = ParseDtype(env, compression);
#if !ARCFACE_TORCH_AT_LEAST(2, 0)
  // Gloo learnt bfloat16 after 1.13 (2.13's has it): say so now rather than at the first all-reduce.
  if (wire == at::kBFloat16) {
    throw Napi::Error::New(env, "DistributedDataParallel: compression 'bfloat16' needs a libtorch 2.x build (the Gloo of libtorch " TORCH_VERSION " has no bfloat16 all-reduce); use 'float16'");
  }
#endif
  return Guarded(env, [&] {
    g_reducers.push_back(std::make_unique<Reducer>(group, buckets, wire));
    return Napi::Number::New(env, static_cast<double>(g_reducers.size() - 1));
  });
}

Napi::Value Prepare(const Napi::CallbackInfo& info) {
  Reducer& r = GetReducer(info.Env(), info[0]);
  return Guarded(info.Env(), [&] {
    r.Prepare(info[1].ToBoolean().Value());
    return info.Env().Undefined();
  });
}

Napi::Value Finish(const Napi::CallbackInfo& info) {
  Reducer& r = GetReducer(info.Env(), info[0]);
  return Guarded(info.Env(), [&] {
    r.Finish();
    return info.Env().Undefined();
  });
}

Napi::Value InFlight(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), GetReducer(info.Env(), info[0]).InFlight());
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  const uint32_t i = info[0].As<Napi::Number>().Uint32Value();
  if (i < g_reducers.size()) g_reducers[i].reset();
  return info.Env().Undefined();
}

}  // namespace

void InitDistReducer(Napi::Env env, Napi::Object dist) {
  dist.Set("reducerCreate", Napi::Function::New(env, Create));
  dist.Set("reducerPrepare", Napi::Function::New(env, Prepare));
  dist.Set("reducerFinish", Napi::Function::New(env, Finish));
  dist.Set("reducerInFlight", Napi::Function::New(env, InFlight));
  dist.Set("reducerDestroy", Napi::Function::New(env, Destroy));
}

}  // namespace arcface
