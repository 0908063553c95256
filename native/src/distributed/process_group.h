// The process groups of native/src/distributed/process_group.cc for other translation units (the
// all-gather with gradient, the DDP reducer): a group is named by its id, as JS names it.
//
// A group holds up to two c10d backends: the one for device (CUDA) tensors — NCCL, or Gloo — and the
// one for CPU tensors — Gloo: the same Gloo group, or a side one over the same store (prefix host_pg/).
// Each collective goes to the backend of its tensors' device.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include "core/torch_version.h"

#include <chrono>
#include <functional>
#include <string>

// libtorch 2.x: ProcessGroupGloo/NCCL are c10d::Backend (a c10d::ProcessGroup wraps them); 1.13: c10d::ProcessGroup.
#if ARCFACE_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

namespace arcface {

#if ARCFACE_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

// One c10d backend of a group.
struct DistBackend {
  c10::intrusive_ptr<C10dBackend> pg;
  std::string name;          // "gloo" or "nccl"
  std::string store_prefix;  // its keys in the rendezvous store: "default_pg" or "host_pg"
  // What DistWait hands to Work::wait: the group's timeout for NCCL (whose wait otherwise only orders
  // the current CUDA stream after the collective), none for Gloo (its own timeout applies).
  std::chrono::milliseconds wait_timeout{0};
};

// The backend that carries `t`'s collectives in `group`; `op` names the operation in errors (a CPU
// tensor given to an NCCL-only group, a destroyed group).
DistBackend DistBackendFor(int group, const at::Tensor& t, const std::string& op);
// Call before starting each collective: counts it, so that a failure names a peer that never entered it.
void DistEnter(int group);
// Waits for `work`; a failure becomes an error naming the operation, this rank and the peers that stopped.
void DistWait(int group, const DistBackend& backend, const c10::intrusive_ptr<c10d::Work>& work, const std::string& op);

// Blocking collectives on the backend of `t`'s device.
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
