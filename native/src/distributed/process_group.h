// Collectives of native/src/distributed/process_group.cc for other translation units (blocking, on the calling thread).
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include <functional>

namespace arcface {

// Every rank's `t` concatenated along dim 0 (equal shapes on all ranks).
at::Tensor DistAllGatherCat(int group, const at::Tensor& t);
// In place: element-wise sum over the ranks.
void DistAllReduceSum(int group, at::Tensor& t);
// The same, started (callable from any thread): returns the function that waits for it and throws
// if it failed (errors, launch's included, name the failing peers). `t` is kept alive meanwhile.
std::function<void()> DistAllReduceSumStart(int group, const at::Tensor& t);
int DistRank(int group);
int DistWorldSize(int group);

void InitDistAutograd(Napi::Env env, Napi::Object dist);
void InitDistReducer(Napi::Env env, Napi::Object dist);

}  // namespace arcface
