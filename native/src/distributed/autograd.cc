// Collectives that carry gradient. Its own translation unit: custom_function.h is slow to compile.
//
// All-gather, as arcface_torch's AllGather for Partial FC: forward concatenates every rank's
// embeddings; backward gives each rank the gradient of its own slice summed over all ranks, times the
// world size (DDP then averages the backbone gradients, so the product is the sum arcface_torch gets).
//
// All-reduce (sum), for SyncBatchNorm's statistics: y = Σ_r x_r on every rank, so ∂L/∂x_r is the sum
// over ranks of ∂L_r'/∂y — the all-reduce of the gradients (what torch's SyncBatchNorm backward
// all-reduces, sum_dy and sum_dy_xmu, is this applied to its two statistics).
#include "core/common.h"
#include "distributed/process_group.h"

#include <torch/csrc/autograd/custom_function.h>

namespace arcface {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AllGatherWithGrad : torch::autograd::Function<AllGatherWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& t, int64_t group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["rows"] = t.size(0);
    return DistAllGatherCat(static_cast<int>(group), t.contiguous());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int group = static_cast<int>(ctx->saved_data["group"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    at::Tensor total = grads[0].contiguous().clone();
    DistAllReduceSum(group, total);
    at::Tensor mine = total.narrow(0, DistRank(group) * rows, rows).mul(DistWorldSize(group));
    return {mine, at::Tensor()};
  }
};

struct AllReduceSumWithGrad : torch::autograd::Function<AllReduceSumWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& t, int64_t group) {
    ctx->saved_data["group"] = group;
    at::Tensor sum = t.contiguous().clone();
    DistAllReduceSum(static_cast<int>(group), sum);
    return sum;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor total = grads[0].contiguous().clone();
    DistAllReduceSum(static_cast<int>(ctx->saved_data["group"].toInt()), total);
    return {total, at::Tensor()};
  }
};

// allGatherWithGrad(group, tensor) → the concatenation, differentiable.
Napi::Value AllGatherWithGradJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t group = info[0].As<Napi::Number>().Int64Value();
  const at::Tensor& t = UnwrapTensor(info[1], "allGatherWithGrad");
  try {
    return WrapTensor(env, AllGatherWithGrad::apply(t, group));
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

// allReduceSumWithGrad(group, tensor) → the sum over ranks (a new tensor), differentiable.
Napi::Value AllReduceSumWithGradJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t group = info[0].As<Napi::Number>().Int64Value();
  const at::Tensor& t = UnwrapTensor(info[1], "allReduceSumWithGrad");
  try {
    return WrapTensor(env, AllReduceSumWithGrad::apply(t, group));
  } catch (const std::exception& e) {
    ThrowAsJs(env, e);
  }
}

}  // namespace

void InitDistAutograd(Napi::Env env, Napi::Object dist) {
  dist.Set("allGatherWithGrad", Napi::Function::New(env, AllGatherWithGradJs));
  dist.Set("allReduceSumWithGrad", Napi::Function::New(env, AllReduceSumWithGradJs));
}

}  // namespace arcface
