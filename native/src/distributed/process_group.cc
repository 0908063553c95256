// c10d process groups for JS: TCPStore rendezvous, ProcessGroupGloo collectives (sync or as
// promises resolved off the JS thread), and a heartbeat so that a failed collective can name the
// rank that stopped. Nothing here moves data itself: gloo does.
#include "core/common.h"
#include "distributed/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>

#include <signal.h>
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
  milliseconds timeout{300000};
  milliseconds heartbeat_interval{1000};
  c10::intrusive_ptr<c10d::Store> tcp;    // the rendezvous store (our keys live here, unprefixed)
  c10::intrusive_ptr<c10d::Store> store;  // its "default_pg/" view, used by gloo
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::thread heartbeat;
  std::atomic<bool> stopping{false};

  ~Group() { Stop(); }

  void Stop() {
    stopping = true;
    if (heartbeat.joinable()) heartbeat.join();
    pg.reset();
    store.reset();
    tcp.reset();
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
    c10d::TCPStoreOptions opts;
    opts.port = master_port;
    opts.isServer = false;
    opts.waitWorkers = false;
    opts.timeout = timeout;
    auto client = c10::make_intrusive<c10d::TCPStore>(master_addr, opts);
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
      c10d::TCPStoreOptions opts;
      opts.port = master_port;
      opts.isServer = false;
      opts.waitWorkers = false;
      opts.timeout = milliseconds(std::min<int64_t>(timeout.count(), 5000));
      c10d::TCPStore probe(master_addr, opts);
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
      return "rank 0 (the rendezvous store at " + master_addr + ":" + std::to_string(master_port) + ") is unreachable";
    }
  }
};

std::vector<std::unique_ptr<Group>> g_groups;

Group& GetGroup(Napi::Env env, Napi::Value id) {
  const uint32_t i = id.As<Napi::Number>().Uint32Value();
  if (i >= g_groups.size() || !g_groups[i] || !g_groups[i]->pg) throw Napi::Error::New(env, "process group was destroyed");
  return *g_groups[i];
}

// The error of a failed collective. Before it surfaces, this rank stays alive one heartbeat
// period: the peers that hit the same failure diagnose it meanwhile, while this process (and,
// on rank 0, the rendezvous store) can still be seen alive and reached.
std::string FailureMessage(Group& g, const std::string& op, const std::string& what) {
  std::string message = op + " failed on rank " + std::to_string(g.rank) + " of " + std::to_string(g.world_size) + ": " +
                        g.DescribePeers() + " (" + what + ")";
  std::this_thread::sleep_for(g.heartbeat_interval);
  return message;
}

// Waits for a collective off the JS thread and settles a promise.
class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, Group& group, c10::intrusive_ptr<c10d::Work> work, std::string op, std::vector<at::Tensor> keep)
      : Napi::AsyncWorker(env), group_(group), work_(std::move(work)), op_(std::move(op)), keep_(std::move(keep)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      SetError(FailureMessage(group_, op_, e.what()));
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Group& group_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::string op_;
  std::vector<at::Tensor> keep_;  // the tensors stay alive until the collective is done
  Napi::Promise::Deferred deferred_;
};

// Runs a collective: `async` → a promise; otherwise waits here and returns undefined.
Napi::Value Finish(Napi::Env env, Group& g, c10::intrusive_ptr<c10d::Work> work, const std::string& op, bool async,
                   std::vector<at::Tensor> keep) {
  if (async) {
    auto* worker = new WaitWorker(env, g, std::move(work), op, std::move(keep));
    auto promise = worker->Promise();
    worker->Queue();
    return promise;
  }
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, FailureMessage(g, op, e.what()));
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

// init({rank, worldSize, masterAddr, masterPort, timeoutMs, heartbeatMs, ifname?}) → group id
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
  const std::string ifname = o.Has("ifname") && o.Get("ifname").IsString() ? o.Get("ifname").As<Napi::String>().Utf8Value() : "";
  try {
    c10d::TCPStoreOptions opts;
    opts.port = g->master_port;
    opts.isServer = g->rank == 0;
    opts.numWorkers = g->world_size;
    opts.waitWorkers = true;
    opts.timeout = g->timeout;
    g->tcp = c10::make_intrusive<c10d::TCPStore>(g->master_addr, opts);
    g->store = c10::make_intrusive<c10d::PrefixStore>("default_pg", g->tcp);
    auto pg_opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
    if (!ifname.empty()) {
      pg_opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (g->master_addr == "127.0.0.1" || g->master_addr == "localhost") {
      pg_opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      pg_opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, g->rank, g->world_size, pg_opts);
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
  if (i < g_groups.size() && g_groups[i]) g_groups[i].reset();
  return info.Env().Undefined();
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
  return Launch(env, g, "allReduce", [&] {
    return Finish(env, g, g.pg->allreduce(tensors, opts), "allReduce", info[3].ToBoolean().Value(), tensors);
  });
}

// broadcast(id, tensor, root, async)
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  std::vector<at::Tensor> tensors{UnwrapTensor(info[1], "broadcast")};
  c10d::BroadcastOptions opts;
  opts.rootRank = info[2].As<Napi::Number>().Int64Value();
  return Launch(env, g, "broadcast", [&] {
    return Finish(env, g, g.pg->broadcast(tensors, opts), "broadcast", info[3].ToBoolean().Value(), tensors);
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
  std::vector<at::Tensor> keep = outputs[0];
  keep.push_back(inputs[0]);
  return Launch(env, g, "allGather", [&] {
    return Finish(env, g, g.pg->allgather(outputs, inputs), "allGather", info[3].ToBoolean().Value(), keep);
  });
}

// barrier(id, async)
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = GetGroup(env, info[0]);
  return Launch(env, g, "barrier", [&] { return Finish(env, g, g.pg->barrier(), "barrier", info[1].ToBoolean().Value(), {}); });
}

}  // namespace

// Blocking forms for other translation units (distributed/autograd.cc); errors name the failing peers.
static Group& GroupAt(int id) {
  if (id < 0 || id >= static_cast<int>(g_groups.size()) || !g_groups[id] || !g_groups[id]->pg) {
    throw std::runtime_error("process group was destroyed");
  }
  return *g_groups[id];
}

static void WaitOrThrow(Group& g, const c10::intrusive_ptr<c10d::Work>& work, const std::string& op) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error(FailureMessage(g, op, e.what()));
  }
}

at::Tensor DistAllGatherCat(int id, const at::Tensor& t) {
  Group& g = GroupAt(id);
  g.Enter();
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g.world_size; ++r) outputs[0].push_back(at::empty_like(t));
  std::vector<at::Tensor> inputs{t};
  WaitOrThrow(g, g.pg->allgather(outputs, inputs), "allGather");
  return at::cat(outputs[0], 0);
}

void DistAllReduceSum(int id, at::Tensor& t) { DistAllReduceSumStart(id, t)(); }

std::function<void()> DistAllReduceSumStart(int id, const at::Tensor& t) {
  try {
    Group& g = GroupAt(id);
    g.Enter();
    std::vector<at::Tensor> tensors{t};
    c10::intrusive_ptr<c10d::Work> work = g.pg->allreduce(tensors);
    return [id, work] { WaitOrThrow(GroupAt(id), work, "allReduce"); };
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
  dist.Set("allReduce", Napi::Function::New(env, AllReduce));
  dist.Set("broadcast", Napi::Function::New(env, Broadcast));
  dist.Set("allGather", Napi::Function::New(env, AllGather));
  dist.Set("barrier", Napi::Function::New(env, Barrier));
  InitDistAutograd(env, dist);
  InitDistReducer(env, dist);
  exports.Set("dist", dist);
}

}  // namespace arcface
