// Threads for data work that must stay off the JS thread and off libtorch's intra-op pool (which
// the training step is using while the next batches decode).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace arcface {

// A fixed set of threads running tasks in submission order. Tasks must not throw.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }

  // Runs the tasks already queued, then joins.
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Runs fn(i) for every i in [0, n) on `threads` threads (the caller's among them) and returns when
// all are done. fn must not throw.
inline void ParallelFor(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
  std::mutex mutex;
  int64_t next = 0;
  auto worker = [&] {
    for (;;) {
      int64_t i;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (next >= n) return;
        i = next++;
      }
      fn(i);
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads && t < n; ++t) helpers.emplace_back(worker);
  worker();
  for (auto& t : helpers) t.join();
}

}  // namespace arcface
