// The sparse optimizer step of Partial FC: only the sampled rows of the shard and of its optimizer
// state are read and written; no dense gradient exists. Per tile of sampled rows one GEMM gives
// ∂loss/∂ŵ = Gᵀ·x̂ (G: ∂loss/∂logits, left by the backward); F.normalize's backward turns it into
// ∂loss/∂w row by row, and the update follows torch.optim.SGD / AdamW on that row in float32 (or
// float64) math, rounding once into the storage type.
#include "heads/partial_fc/kernel.h"
#include "heads/partial_fc/gemm.h"
#include "heads/partial_fc/rows.h"
#include "heads/partial_fc/types.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

namespace arcface::pfc {

at::Tensor Kernel::TileGradHat(int64_t t) {
  const at::Tensor grad = TileGrad(t);
  at::Tensor g = wtile_.narrow(0, 0, TileCols(t));
  Matmul(g, grad.t(), xhat_, /*accumulate=*/false);
  return g;
}

void Kernel::ExpectGradient(const char* what) const {
  TORCH_CHECK(phase_ == Phase::kBackward, "PartialFC.", what, ": no gradient to apply; call loss.backward() after forward()",
              phase_ == Phase::kIdle ? " (each step needs a new forward and backward)" : "");
}

template <typename Update>
void Kernel::ForEachSampledRow(const char* what, Update&& update) {
  ExpectGradient(what);
  KernelGuard guard;
  const int32_t* index = Index();
  DispatchTypes(math_, weight_.scalar_type(), [&](auto acc_tag, auto store_tag) {
    using acc_t = typename decltype(acc_tag)::type;
    using store_t = typename decltype(store_tag)::type;
    store_t* w = static_cast<store_t*>(weight_.data_ptr());
    const acc_t eps = static_cast<acc_t>(kNormEps);
    for (int64_t t = 0; t < NumTiles(); ++t) {
      const int64_t r0 = t * tile_rows_;
      acc_t* g = TileGradHat(t).data_ptr<acc_t>();
      const acc_t* norms = TileNorms(t).data_ptr<acc_t>();  // after TileGradHat: recompute refreshes them
      at::parallel_for(0, TileCols(t), 16, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t row = index ? index[r0 + j] : r0 + j;
          store_t* wr = w + row * dim_;
          acc_t* gr = g + j * dim_;
          const acc_t n = norms[j];
          if (n >= eps) {
            rows::NormalizeBackward(wr, gr, dim_, n);
          } else {  // clamp_min(eps) passes no gradient to the norm
            rows::Scale(gr, acc_t(1) / eps, dim_);
          }
          update(r0 + j, row, wr, static_cast<const acc_t*>(gr));
        }
      });
    }
  });
}

template <typename Update>
void Kernel::ForEachAccumulatedRow(Update&& update) {
  KernelGuard guard;
  const int64_t n = accumulated_rows();
  DispatchTypes(math_, weight_.scalar_type(), [&](auto acc_tag, auto store_tag) {
    using acc_t = typename decltype(acc_tag)::type;
    using store_t = typename decltype(store_tag)::type;
    store_t* w = static_cast<store_t*>(weight_.data_ptr());
    const acc_t* g = acc_grad_.data_ptr<acc_t>();
    at::parallel_for(0, n, 16, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) update(j, acc_rows_[j], w + acc_rows_[j] * dim_, g + j * dim_);
    });
  });
  acc_rows_.clear();
  acc_slot_.clear();
}

template <typename Update>
void Kernel::ForEachUpdateRow(const char* what, Update&& update) {
  if (acc_rows_.empty()) return ForEachSampledRow(what, std::forward<Update>(update));
  if (phase_ == Phase::kBackward) Accumulate();
  ForEachAccumulatedRow(std::forward<Update>(update));
}

void Kernel::Accumulate() {
  ExpectGradient("accumulateGrad()");
  // Slots first, serially; then each row's gradient goes straight into its slot (distinct rows:
  // distinct slots, so threads share the work), with no [S, D] copy of the gradients.
  const int64_t have = accumulated_rows();
  const int32_t* index = Index();
  std::vector<int64_t> slots(num_sampled_);
  std::vector<uint8_t> fresh(num_sampled_);
  for (int64_t pos = 0; pos < num_sampled_; ++pos) {
    const int64_t row = index ? index[pos] : pos;
    const auto [slot, inserted] = acc_slot_.try_emplace(row, accumulated_rows());
    if (inserted) acc_rows_.push_back(row);
    slots[pos] = slot->second;
    fresh[pos] = inserted;
  }
  const int64_t need = accumulated_rows();
  if (!acc_grad_.defined() || acc_grad_.size(0) < need || acc_grad_.scalar_type() != math_) {
    at::Tensor grown = at::empty({std::max<int64_t>(need, 2 * have), dim_}, math_);
    if (have > 0) grown.narrow(0, 0, have).copy_(acc_grad_.narrow(0, 0, have));
    acc_grad_ = grown;
  }
  ForEachSampledRow("accumulateGrad()", [&](int64_t pos, int64_t /*row*/, auto* /*w*/, const auto* grad) {
    using acc_t = std::remove_cv_t<std::remove_pointer_t<decltype(grad)>>;
    acc_t* sum = acc_grad_.data_ptr<acc_t>() + slots[pos] * dim_;
    if (fresh[pos]) {
      std::copy(grad, grad + dim_, sum);
    } else {
      for (int64_t k = 0; k < dim_; ++k) sum[k] += grad[k];
    }
  });
  phase_ = Phase::kIdle;
}

void Kernel::DiscardGrad() {
  acc_rows_.clear();
  acc_slot_.clear();
  if (phase_ == Phase::kBackward) phase_ = Phase::kIdle;
}

void Kernel::ScaleGrad(double factor) {
  if (phase_ == Phase::kBackward) grad_scale_ *= factor;
  if (!acc_rows_.empty()) acc_grad_.narrow(0, 0, accumulated_rows()).mul_(factor);
}

at::Tensor Kernel::RowGrads() {
  at::Tensor out = at::empty({num_sampled_, dim_}, math_);
  ForEachSampledRow("rowGrads()", [&](int64_t pos, int64_t /*row*/, auto* /*w*/, const auto* grad) {
    using acc_t = std::remove_cv_t<std::remove_pointer_t<decltype(grad)>>;
    std::copy(grad, grad + dim_, out.data_ptr<acc_t>() + pos * dim_);
  });
  return out;
}

void Kernel::SgdStep(const at::Tensor& momentum_buffer, const SgdOptions& o) {
  const bool momentum = o.momentum != 0;
  if (momentum) {
    TORCH_CHECK(momentum_buffer.defined() && momentum_buffer.sizes() == weight_.sizes() &&
                    momentum_buffer.scalar_type() == weight_.scalar_type() && momentum_buffer.is_contiguous(),
                "PartialFC.step(): the momentum buffer must be a contiguous tensor shaped and typed like the shard");
  }
  ForEachUpdateRow("step()", [&](int64_t /*pos*/, int64_t row, auto* w, const auto* grad) {
    using store_t = std::remove_pointer_t<decltype(w)>;
    using acc_t = std::remove_cv_t<std::remove_pointer_t<decltype(grad)>>;
    store_t* buf = momentum ? static_cast<store_t*>(momentum_buffer.data_ptr()) + row * dim_ : nullptr;
    rows::SgdRow(w, buf, grad, dim_, static_cast<acc_t>(o.lr), static_cast<acc_t>(o.momentum), static_cast<acc_t>(o.weight_decay));
  });
  phase_ = Phase::kIdle;
}

void Kernel::AdamwStep(const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, const at::Tensor& steps, const AdamwOptions& o) {
  for (const at::Tensor* s : {&exp_avg, &exp_avg_sq}) {
    TORCH_CHECK(s->defined() && s->sizes() == weight_.sizes() && s->scalar_type() == weight_.scalar_type() && s->is_contiguous(),
                "PartialFC.step(): AdamW moments must be contiguous tensors shaped and typed like the shard");
  }
  TORCH_CHECK(steps.dim() == 1 && steps.size(0) == num_local_ && steps.scalar_type() == at::kInt && steps.is_contiguous(),
              "PartialFC.step(): AdamW step counts must be int32 [", num_local_, "]");
  int32_t* step = steps.data_ptr<int32_t>();
  ForEachUpdateRow("step()", [&](int64_t /*pos*/, int64_t row, auto* w, const auto* grad) {
    using store_t = std::remove_pointer_t<decltype(w)>;
    store_t* m = static_cast<store_t*>(exp_avg.data_ptr()) + row * dim_;
    store_t* v = static_cast<store_t*>(exp_avg_sq.data_ptr()) + row * dim_;
    const int32_t n = ++step[row];  // each row counts its own updates: its bias correction
    const double bias_correction1 = 1 - std::pow(o.beta1, n), bias_correction2 = 1 - std::pow(o.beta2, n);
    const rows::AdamwRowParams p{1 - o.lr * o.weight_decay, o.beta1, 1 - o.beta1, o.beta2, 1 - o.beta2,
                                 o.lr / bias_correction1, std::sqrt(bias_correction2), o.eps};
    rows::AdamwRow(w, m, v, grad, dim_, p);
  });
  phase_ = Phase::kIdle;
}

}  // namespace arcface::pfc
