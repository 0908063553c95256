// Partial FC's sampling of class centres (PartialFC_V2.sample): every positive centre of the batch
// that lives in this shard, plus negatives drawn uniformly without replacement, sorted by row.
//
// arcface_torch ranks torch.rand scores (positives scored 2) with topk and sorts the winners; that
// draws a uniform subset of the negatives. Knuth's selection sampling (Algorithm S) draws the same
// distribution in one ordered pass, with no class-sized scratch tensor and no sort. Its random
// stream is seeded from libtorch's default generator, so torch.manualSeed makes it repeatable.
#include "heads/partial_fc/kernel.h"
#include "heads/partial_fc/types.h"
#include "core/rng.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>
#include <mutex>

namespace arcface::pfc {

namespace {

uint64_t SeedFromTorch() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

// Rows 0..num_local−1 in order: positives always, each other row with probability
// (negatives still needed) / (negatives still to visit) — a uniform subset of the negatives.
int64_t SelectRows(const std::vector<int64_t>& positives, int64_t num_local, int64_t num_sample, int32_t* out) {
  Rng rng(SeedFromTorch());
  int64_t need = num_sample - static_cast<int64_t>(positives.size());
  int64_t pool = num_local - static_cast<int64_t>(positives.size());
  size_t p = 0;
  int64_t n = 0;
  for (int64_t row = 0; row < num_local; ++row) {
    if (p < positives.size() && positives[p] == row) {
      out[n++] = static_cast<int32_t>(row);
      ++p;
      continue;
    }
    if (need > 0 && static_cast<double>(pool) * rng.Uniform() < static_cast<double>(need)) {
      out[n++] = static_cast<int32_t>(row);
      --need;
    }
    --pool;
    if (need == 0) {  // only positives left to take
      for (; p < positives.size(); ++p) out[n++] = static_cast<int32_t>(positives[p]);
      break;
    }
  }
  return n;
}

}  // namespace

int64_t Kernel::Sample(const at::Tensor& labels, int64_t class_start, int64_t num_local, int64_t num_sample) {
  KernelGuard guard;
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == at::kLong, "Partial FC: labels must be int64 [B]");
  TORCH_CHECK(num_local > 0 && num_sample >= 0, "Partial FC: bad shard size");
  TORCH_CHECK(num_local <= std::numeric_limits<int32_t>::max(), "Partial FC: shards of more than 2^31 − 1 rows "
              "are not supported (the sample's rows are int32), got ", num_local);
  const at::Tensor lab = labels.contiguous();
  const int64_t* l = lab.data_ptr<int64_t>();
  batch_ = lab.numel();
  num_local_ = num_local;

  // torch.unique(labels[index_positive], sorted=True), as rows of this shard
  positives_.clear();
  for (int64_t i = 0; i < batch_; ++i) {
    const int64_t row = l[i] - class_start;
    if (row >= 0 && row < num_local) positives_.push_back(row);
  }
  std::sort(positives_.begin(), positives_.end());
  positives_.erase(std::unique(positives_.begin(), positives_.end()), positives_.end());
  const int64_t num_positive = static_cast<int64_t>(positives_.size());

  full_ = num_sample >= num_local;
  if (full_) {
    num_sampled_ = num_local;
  } else if (num_sample < num_positive) {  // positives do not fit: take just them, as arcface_torch
    num_sampled_ = num_positive;
    index_ = Reserve(index_buf_, num_sampled_, at::kInt);
    std::copy(positives_.begin(), positives_.end(), index_.data_ptr<int32_t>());
  } else {
    num_sampled_ = num_sample;
    index_ = Reserve(index_buf_, num_sampled_, at::kInt);  // int32: half the bytes per sampled row
    const int64_t n = SelectRows(positives_, num_local, num_sample, index_.data_ptr<int32_t>());
    TORCH_INTERNAL_ASSERT(n == num_sample, "Partial FC: sampled ", n, " rows instead of ", num_sample);
  }

  // labels[index_positive] = searchsorted(index, labels[index_positive]); −1 elsewhere
  targets_ = at::empty({batch_}, at::kLong);
  int64_t* target = targets_.data_ptr<int64_t>();
  const int32_t* index = Index();
  for (int64_t i = 0; i < batch_; ++i) {
    const int64_t row = l[i] - class_start;
    if (row < 0 || row >= num_local) {
      target[i] = -1;
    } else {
      target[i] = full_ ? row : std::lower_bound(index, index + num_sampled_, row) - index;
    }
  }
  phase_ = Phase::kSampled;
  ++generation_;
  return num_sampled_;
}

}  // namespace arcface::pfc
