// c10d process groups for JS: TCPStore rendezvous, collectives (sync or as promises resolved off
// the JS thread) on ProcessGroupGloo — and, in the CUDA build, ProcessGroupNCCL for CUDA tensors
// beside a side Gloo group for CPU ones — and a heartbeat so that a failed collective can name the
// rank that stopped. Nothing here moves data itself: gloo and NCCL do.
#include "core/common.h"
#include "distributed/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ARCFACE_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <cerrno>
#include <sstream>
#include <thread>

namespace arcface {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Group {
  int rank = 0;
  int world_size = 1;
  std::string master_addr;
  uint16_t master_port = 0;
  // torchrun's agent store: its agent hosts the TCPStore on master_port, every rank is a client, and
  // each attempt's keys live under /worker/attempt_<restart count> (a restarted attempt must not
  // see the dead one's keys)
  bool agent_store = false;
  std::string store_prefix;
  milliseconds timeout{300000};
  milliseconds heartbeat_interval{1000};
  c10::intrusive_ptr<c10d::Store> tcp;  // the rendezvous store (our keys live here, unprefixed; the backends' under a prefix)
  DistBackend device;  // CUDA tensors: NCCL, or Gloo
  DistBackend host;    // CPU tensors: the device backend when it is Gloo and no side group was asked for; none for NCCL only
  std::thread heartbeat;
  std::atomic<bool> stopping{false};
  std::atomic<bool> failed{false};  // a collective failed: NCCL's communicators are aborted, not shut down

  ~Group() { Stop(false); }

  // `graceful`: destroy() from JS (NCCL shuts down its communicators, as destroy_process_group);
  // otherwise (a failure, the process exiting) NCCL aborts them, which waits for nobody.
  void Stop(bool graceful) {
    stopping = true;
    if (heartbeat.joinable()) heartbeat.join();
#ifdef ARCFACE_CUDA
    if (device.name == "nccl" && device.pg) {
      try {
        if (graceful && !failed) device.pg->shutdown();
        else device.pg->abort();
      } catch (const std::exception&) {
        // nothing left to tell: the group is going away
      }
    }
#endif
    device = {};
    host = {};
    tcp.reset();
  }

  const DistBackend& BackendFor(const at::Tensor& t, const std::string& op) const {
    if (t.is_cuda()) return device;
    if (!host.pg) {
      throw std::invalid_argument(op + ": the tensor is on " + t.device().str() +
                                  ", but this process group is NCCL only (hostGroup: false), which carries CUDA tensors: "
                                  "move it to the GPU, or create the group with hostGroup: true (a side Gloo group for CPU tensors)");
    }
    return host;
  }

  // A connection to the rendezvous store, seen through store_prefix when there is one. Rank 0 hosts
  // the store unless the launcher's agent does.
  c10::intrusive_ptr<c10d::Store> Connect(milliseconds wait, bool first) const {
    c10d::TCPStoreOptions opts;
    opts.port = master_port;
    opts.isServer = first && rank == 0 && !agent_store;
    opts.numWorkers = world_size;
    opts.waitWorkers = first;
    opts.timeout = wait;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(master_addr, opts);
    if (!store_prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(store_prefix, store);
    return store;
  }

  std::string HeartbeatKey(int r) const { return "arcface/heartbeat/" + std::to_string(r); }
  std::string ProcessKey(int r) const { return "arcface/process/" + std::to_string(r); }
  std::string ProgressKey(int r) const { return "arcface/progress/" + std::to_string(r); }

  // Collectives this rank has entered; published so that a stalled peer can be named.
  int64_t entered = 0;
  void Enter() {
    const std::string n = std::to_string(++entered);
    tcp->set(ProgressKey(rank), std::vector<uint8_t>(n.begin(), n.end()));
  }

  static std::string HostName() {
    char name[256] = {0};
    gethostname(name, sizeof name - 1);
    return name;
  }

  // Each rank stamps its key in the store every interval, on its own store connection.
  void StartHeartbeat() {
    auto client = Connect(timeout, false);
    const std::string me = HostName() + " " + std::to_string(getpid());
    client->set(ProcessKey(rank), std::vector<uint8_t>(me.begin(), me.end()));
    client->set(ProgressKey(rank), std::vector<uint8_t>{'0'});
    auto stamp = [this, client]() {
      std::string now = std::to_string(NowMs());
      client->set(HeartbeatKey(rank), std::vector<uint8_t>(now.begin(), now.end()));
    };
    stamp();
    heartbeat = std::thread([this, client, stamp]() {
      while (!stopping) {
        for (int waited = 0; waited < heartbeat_interval.count() && !stopping; waited += 50) {
          std::this_thread::sleep_for(milliseconds(50));
        }
        if (stopping) break;
        try {
          stamp();
        } catch (...) {
          return;  // the store (rank 0) is gone; failures are reported by the collectives
        }
      }
    });
  }

  std::string FailedKey(int r) const { return "arcface/failed/" + std::to_string(r); }

  // After a failed collective: which ranks are gone? Workers on this host are checked by pid at
  // once; the others by their heartbeat, waiting up to 4 periods for a dead one to go stale. This
  // rank first marks itself as failed, so that peers which see it exit after reporting the same
  // failure do not name it as the cause; ranks marked that way are left out here too.
  std::string DescribePeers() {
    try {
      auto store = Connect(milliseconds(std::min<int64_t>(timeout.count(), 5000)), false);
      c10d::Store& probe = *store;
      probe.set(FailedKey(rank), std::vector<uint8_t>{'1'});
      auto read = [&probe](const std::string& key) {
        auto bytes = probe.get(key);
        return std::string(bytes.begin(), bytes.end());
      };
      const std::string host = HostName();
      const auto deadline = Clock::now() + 4 * heartbeat_interval;
      for (;;) {
        std::vector<int> gone;
        const int64_t now = NowMs();
        for (int r = 0; r < world_size; ++r) {
          if (r == rank || probe.check({FailedKey(r)})) continue;
          std::istringstream proc(read(ProcessKey(r)));
          std::string their_host;
          pid_t pid = 0;
          proc >> their_host >> pid;
          const bool dead_here = their_host == host && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
          const bool silent = now - std::stoll(read(HeartbeatKey(r))) > 3 * heartbeat_interval.count();
          if (dead_here || silent) gone.push_back(r);
        }
        if (gone.empty() && Clock::now() >= deadline) {
          // Everyone is alive: name the ranks that never entered this collective.
          std::ostringstream out;
          for (int r = 0; r < world_size; ++r) {
            if (r == rank) continue;
            const int64_t theirs = std::stoll(read(ProgressKey(r)));
            if (theirs < entered) out << (out.tellp() > 0 ? "; " : "") << "rank " << r << " has not entered it (it is at collective " << theirs << ", this rank at " << entered << ")";
          }
          return out.tellp() > 0 ? out.str() : "every rank is alive and has entered it";
        }
        if (!gone.empty()) {
          std::ostringstream out;
          out << "rank" << (gone.size() > 1 ? "s " : " ");
          for (size_t i = 0; i < gone.size(); ++i) out << (i ? ", " : "") << gone[i];
          out << (gone.size() > 1 ? " are" : " is") << " gone";
          return out.str();
        }
        std::this_thread::sleep_for(milliseconds(200));
      }
    } catch (const std::exception&) {
      const std::string where = master_addr + ":" + std::to_string(master_port);
      return agent_store ? "the launcher's agent (the rendezvous store at " + where + ") is unreachable"
                         : "rank 0 (the rendezvous store at " + where + ") is unreachable";
    }
  }
};

std::vector<std::unique_ptr<Group>> g_groups;

Group& GetGroup(Napi::Env env, Napi::Value id) {
  const uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= g_groups.size() || !g_groups[i] || !g_groups[i]->device.pg) throw Napi::Error::New(env, "process group was destroyed");
  return *g_groups[i];
}

// The backend for `t`, or a JS error naming the operation.
const DistBackend& BackendOf(Napi::Env env, Group& g, const at::Tensor& t, const std::string& op) {
  try {
    return g.BackendFor(t, op);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// The error of a failed collective. Before it surfaces, this rank stays alive one heartbeat
// period: the peers that hit the same failure diagnose it meanwhile, while this process (and,
// on rank 0, the rendezvous store) can still be seen alive and reached.
std::string FailureMessage(Group& g, const std::string& op, const std::string& what) {
  g.failed = true;
  std::string message = op + " failed on rank " + std::to_string(g.rank) + " of " + std::to_string(g.world_size) + ": " +
                        g.DescribePeers() + " (" + what + ")";
  std::this_thread::sleep_for(g.heartbeat_interval);
  return message;
}

// Waits for `work` on backend `b`; a failure becomes the message that names the stopped peers.
void WaitOrThrow(Group& g, const DistBackend& b, const c10::intrusive_ptr<c10d::Work>& work, const std::string& op) {
  try {
    work->wait(b.wait_timeout);
  } catch (const std::exception& e) {
    throw std::runtime_error(FailureMessage(g, op, e.what()));
  }
}

// Waits for a collective off the JS thread and settles a promise.
class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, Group& group, DistBackend backend, c10::intrusive_ptr<c10d::Work> work, std::string op,
             std::vector<at::Tensor> keep)
      : Napi::AsyncWorker(env), group_(group), backend_(std::move(backend)), work_(std::move(work)), op_(std::move(op)),
        keep_(std::move(keep)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      WaitOrThrow(group_, backend_, work_, op_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Group& group_;
  DistBackend backend_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::string op_;
  std::vector<at::Tensor> keep_;  // the tensors stay alive until the collective is done
  Napi::Promise::Deferred deferred_;
};

// Runs a collective: `async` → a promise; otherwise waits here and returns undefined.
Napi::Value Finish(Napi::Env env, Group& g, const DistBackend& b, c10::intrusive_ptr<c10d::Work> work, const std::string& op,
                   bool async, std::vector<at::Tensor> keep) {
  if (async) {
    auto* worker = new WaitWorker(env, g, b, std::move(work), op, std::move(keep));
    auto promise = worker->Promise();
    worker->Queue();
    return promise;
  }
  try {
    WaitOrThrow(g, b, work, op);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

template <typename F>
Napi::Value Launch(Napi::Env env, Group& g, const std::string& op, F start) {
  try {
    g.Enter();
    return start();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, FailureMessage(g, op, e.what()));
  }
}

// Why `backend` cannot run here ("" when it can). Checked before any rendezvous, so that every
// rank fails at once with the reason rather than waiting for peers.
std::string BackendUnavailable(Napi::Env env, const std::string& backend) {
  if (backend == "gloo") return "";
  if (backend != "nccl") throw Napi::TypeError::New(env, "process group: unknown backend '" + backend + "' (gloo, nccl)");
  const std::string why = CudaUnavailableReason();
  return why.empty() ? "" : "process group backend 'nccl' is not available: " + why;
}

// checkBackend(name): throws the reason `name` cannot run here (a world of one creates no native group).
Napi::Value CheckBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string why = BackendUnavailable(env, info[0].As<Napi::String>().Utf8Value());
  if (!why.empty()) throw Napi::Error::New(env, why);
  return env.Undefined();
}

// ncclVersion() → the version of the NCCL library loaded ("2.30.7"); undefined in a build without CUDA.
Napi::Value NcclVersion(const Napi::CallbackInfo& info) {
#ifdef ARCFACE_CUDA
  return Napi::String::New(info.Env(), c10d::getNcclVersion());
#else
  return info.Env().Undefined();
#endif
}

// A Gloo group over the store's `prefix` view; its transport on `ifname`, or loopback for a local master.
DistBackend MakeGloo(const Group& g, const std::string& prefix, const std::string& ifname) {
  auto opts = c10d::ProcessGroupGloo::Options::create(g.timeout);
  if (!ifname.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (g.master_addr == "127.0.0.1" || g.master_addr == "localhost") {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, g.tcp);
  return {c10::make_intrusive<c10d::ProcessGroupGloo>(store, g.rank, g.world_size, opts), "gloo", prefix, milliseconds(0)};  // Work::wait without a timeout
}

#ifdef ARCFACE_CUDA
// NCCL for CUDA tensors; its communicators are created at the first collective (on the tensors'
// device). Its watchdog times a collective out after the group's timeout; async error handling in
// CleanUpOnly mode (unless the user chose a mode) then aborts the communicators instead of the
// process, and wait() — given the same timeout, so that it blocks until the collective is done —
// throws, so this rank reports the failure itself, naming the peers that stopped.
DistBackend MakeNccl(const Group& g) {
  setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", /*overwrite=*/0);
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = g.timeout;
  auto store = c10::make_intrusive<c10d::PrefixStore>("default_pg", g.tcp);
  return {c10::make_intrusive<c10d::ProcessGroupNCCL>(store, g.rank, g.world_size, opts), "nccl", "default_pg", g.timeout};
}
#endif

// init({rank, worldSize, masterAddr, masterPort, timeoutMs, heartbeatMs, backend, hostGroup, ifname?, agentStore?, storePrefix?})
// → group id.
// backend 'gloo': one Gloo group for every tensor, or with hostGroup a side one (prefix host_pg) for CPU
// tensors; 'nccl': NCCL for CUDA tensors, and with hostGroup the side Gloo group for CPU ones.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[0].As<Napi::Object>();
  auto g = std::make_unique<Group>();
  g->rank = o.Get("rank").As<Napi::Number>().Int32Value();
  g->world_size = o.Get("worldSize").As<Napi::Number>().Int32Value();
  g->master_addr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
  g->master_port = static_cast<uint16_t>(o.Get("masterPort").As<Napi::Number>().Uint32Value());
  g->timeout = milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
  g->heartbeat_interval = milliseconds(o.Get("heartbeatMs").As<Napi::Number>().Int64Value());
  const std::string backend = o.Get("backend").As<Napi::String>().Utf8Value();
  const bool host_group = o.Get("hostGroup").ToBoolean().Value();
  g->agent_store = o.Get("agentStore").ToBoolean().Value();
  g->store_prefix = o.Get("storePrefix").IsString() ? o.Get("storePrefix").As<Napi::String>().Utf8Value() : "";
  const std::string ifname = o.Has("ifname") && o.Get("ifname").IsString() ? o.Get("ifname").As<Napi::String>().Utf8Value() : "";
  const std::string why = BackendUnavailable(env, backend);
  if (!why.empty()) throw Napi::Error::New(env, why);
  try {
    g->tcp = g->Connect(g->timeout, true);
#ifdef ARCFACE_CUDA
    g->device = backend == "nccl" ? MakeNccl(*g) : MakeGloo(*g, "default_pg", ifname);
#else
    g->device = MakeGloo(*g, "default_pg", ifname);  // 'nccl' was refused above
#endif
    if (host_group) g->host = MakeGloo(*g, "host_pg", ifname);
    else if (g->device.name == "gloo") g->host = g->device;
    g->StartHeartbeat();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, "process group init (rank " + std::to_string(g->rank) + " of " + std::to_string(g->world_size) +
                                    ", master " + g->master_addr + ":" + std::to_string(g->master_port) + "): " + e.what());
  }
  g_groups.push_back(std::move(g));
  return Napi::Number::New(env, static_cast<double>(g_groups.size() - 1));
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  const uint32_t i = info[0].As<Napi::Number>().Uint32Value();
  if (i < g_groups.size() && g_groups[i]) {
    g_groups[i]->Stop(true);
    g_groups[i].reset();
  }
  return info.Env().Undefined();
}

// backendFor(id, tensor) → {backend, storePrefix}: the c10d group that carries this tensor's collectives.
Napi::Value BackendForJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  const DistBackend& b = BackendOf(env, g, UnwrapTensor(info[1], "backendFor"), "backendFor");
  auto out = Napi::Object::New(env);
  out.Set("backend", b.name);
  out.Set("storePrefix", b.store_prefix);
  return out;
}

c10d::ReduceOp ParseReduceOp(Napi::Env env, const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw Napi::TypeError::New(env, "unknown reduce op '" + op + "' (sum, max, min, product)");
}

// allReduce(id, tensor, op, async)
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  std::vector<at::Tensor> tensors{UnwrapTensor(info[1], "allReduce")};
  c10d::AllreduceOptions opts;
  opts.reduceOp = ParseReduceOp(env, info[2].As<Napi::String>().Utf8Value());
  const DistBackend& b = BackendOf(env, g, tensors[0], "allReduce");
  return Launch(env, g, "allReduce", [&] {
    return Finish(env, g, b, b.pg->allreduce(tensors, opts), "allReduce", info[3].ToBoolean().Value(), tensors);
  });
}

// broadcast(id, tensor, root, async)
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  std::vector<at::Tensor> tensors{UnwrapTensor(info[1], "broadcast")};
  c10d::BroadcastOptions opts;
  opts.rootRank = info[2].As<Napi::Number>().Int64Value();
  const DistBackend& b = BackendOf(env, g, tensors[0], "broadcast");
  return Launch(env, g, "broadcast", [&] {
    return Finish(env, g, b, b.pg->broadcast(tensors, opts), "broadcast", info[3].ToBoolean().Value(), tensors);
  });
}

// allGather(id, outputs[worldSize], input, async)
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  auto outs_js = info[1].As<Napi::Array>();
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (uint32_t i = 0; i < outs_js.Length(); ++i) outputs[0].push_back(UnwrapTensor(outs_js.Get(i), "allGather"));
  std::vector<at::Tensor> inputs{UnwrapTensor(info[2], "allGather")};
  for (size_t i = 0; i < outputs[0].size(); ++i) {
    if (outputs[0][i].device() != inputs[0].device()) {
      throw Napi::Error::New(env, "allGather: output " + std::to_string(i) + " is on " + outputs[0][i].device().str() +
                                      ", the input on " + inputs[0].device().str() + " (one device for all of a collective's tensors)");
    }
  }
  const DistBackend& b = BackendOf(env, g, inputs[0], "allGather");
  std::vector<at::Tensor> keep = outputs[0];
  keep.push_back(inputs[0]);
  return Launch(env, g, "allGather", [&] {
    return Finish(env, g, b, b.pg->allgather(outputs, inputs), "allGather", info[3].ToBoolean().Value(), keep);
  });
}

// barrier(id, async): on the host backend where there is one (a barrier orders processes, not devices).
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  const DistBackend& b = g.host.pg ? g.host : g.device;
  return Launch(env, g, "barrier", [&] { return Finish(env, g, b, b.pg->barrier(), "barrier", info[1].ToBoolean().Value(), {}); });
}

}  // namespace

// For other translation units (distributed/autograd.cc, the DDP reducer); errors name the failing peers.
static Group& GroupAt(int id) {
  if (id < 0 || id >= static_cast<int>(g_groups.size()) || !g_groups[id] || !g_groups[id]->device.pg) {
    throw std::runtime_error("process group was destroyed");
  }
  return *g_groups[id];
}

DistBackend DistBackendFor(int id, const at::Tensor& t, const std::string& op) { return GroupAt(id).BackendFor(t, op); }

void DistEnter(int id) { GroupAt(id).Enter(); }

void DistWait(int id, const DistBackend& backend, const c10::intrusive_ptr<c10d::Work>& work, const std::string& op) {
  WaitOrThrow(GroupAt(id), backend, work, op);
}

at::Tensor DistAllGatherCat(int id, const at::Tensor& t) {
  const DistBackend b = DistBackendFor(id, t, "allGather");
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < DistWorldSize(id); ++r) outputs[0].push_back(at::empty_like(t));
  std::vector<at::Tensor> inputs{t};
  DistEnter(id);
  DistWait(id, b, b.pg->allgather(outputs, inputs), "allGather");
  return at::cat(outputs[0], 0);
}

void DistAllReduceSum(int id, at::Tensor& t) { DistAllReduceSumStart(id, t)(); }

std::function<void()> DistAllReduceSumStart(int id, const at::Tensor& t) {
  try {
    const DistBackend b = DistBackendFor(id, t, "allReduce");
    std::vector<at::Tensor> tensors{t};
    DistEnter(id);
    c10::intrusive_ptr<c10d::Work> work = b.pg->allreduce(tensors);
    return [id, b, work] { DistWait(id, b, work, "allReduce"); };
  } catch (const std::exception& e) {
    return [id, what = std::string(e.what())] { throw std::runtime_error(FailureMessage(GroupAt(id), "allReduce", what)); };
  }
}

int DistRank(int id) { return GroupAt(id).rank; }
int DistWorldSize(int id) { return GroupAt(id).world_size; }

void InitDist(Napi::Env env, Napi::Object exports) {
  auto dist = Napi::Object::New(env);
  dist.Set("init", Napi::Function::New(env, Init));
  dist.Set("destroy", Napi::Function::New(env, Destroy));
  dist.Set("checkBackend", Napi::Function::New(env, CheckBackend));
  dist.Set("backendFor", Napi::Function::New(env, BackendForJs));
  dist.Set("ncclVersion", Napi::Function::New(env, NcclVersion));
  dist.Set("allReduce", Napi::Function::New(env, AllReduce));
  dist.Set("broadcast", Napi::Function::New(env, Broadcast));
  dist.Set("allGather", Napi::Function::New(env, AllGather));
  dist.Set("barrier", Napi::Function::New(env, Barrier));
  InitDistAutograd(env, dist);
  InitDistReducer(env, dist);
  exports.Set("dist", dist);
}

}  // namespace arcface
