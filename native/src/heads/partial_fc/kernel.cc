// The fused margin-softmax cross-entropy of Partial FC: forward phases and backward (see kernel.h).
#include "heads/partial_fc/kernel.h"
#include "heads/partial_fc/gemm.h"
#include "heads/partial_fc/rows.h"
#include "heads/partial_fc/types.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace arcface::pfc {

namespace {

// Copies rows r0.. of the sample into out (math type) and normalises them: x / max(‖x‖, eps).
// The norms (of these rows: norms[j]) are computed here, or reused when kept from the forward.
template <typename acc_t, typename store_t>
void GatherRows(const store_t* w, int64_t dim, const int32_t* index, int64_t r0, int64_t cols, acc_t* out,
                acc_t* norms, bool compute_norms) {
  at::parallel_for(0, cols, 32, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const store_t* src = w + (index ? index[r0 + j] : r0 + j) * dim;
      acc_t* dst = out + j * dim;
      if (compute_norms) {
        norms[j] = rows::Load(src, dst, dim);
      } else {
        rows::Convert(src, dst, dim);
      }
      rows::Scale(dst, acc_t(1) / std::max(norms[j], acc_t(kNormEps)), dim);
    }
  });
}

// One tile of cosines [B, cols] → clamp, inter-class filtering, margin on the target, scale (as
// CombinedMarginLoss), then exp(x − row max of the tile) into the buffer tile `out` (storage type;
// may be the tile itself), the sign bit marking zero-gradient entries. ArcFace's acos/cos round trip
// is applied to the target only: for the other entries cos(acos(x)) is x up to rounding.
template <typename acc_t, typename buf_t>
void MarginExpTile(acc_t* tile, buf_t* out, int64_t batch, int64_t cols, int64_t col0, const int64_t* targets,
                   const Margin& m, acc_t* tile_max, acc_t* tile_sum, acc_t* target_logit) {
  const bool arcface = m.m1 == 1.0 && m.m3 == 0.0;
  const acc_t s = static_cast<acc_t>(m.s), filter = static_cast<acc_t>(m.filter);
  at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> zero(cols);  // entries that pass no gradient
    for (int64_t i = b0; i < b1; ++i) {
      acc_t* row = tile + i * cols;
      const int64_t t = targets[i] < 0 ? -1 : targets[i] - col0;
      if (t < 0 || t >= cols) {
        tile_max[i] = rows::MarginRow(row, zero.data(), cols, s, filter);
      } else {
        // the target: not filtered; its margin through acos/cos (ArcFace) or − m3 (CosFace)
        const acc_t c = row[t], cc = std::min(std::max(c, acc_t(-1)), acc_t(1));
        const acc_t x_t = s * (arcface ? std::cos(std::acos(cc) + static_cast<acc_t>(m.m2)) : cc - static_cast<acc_t>(m.m3));
        const acc_t before = t > 0 ? rows::MarginRow(row, zero.data(), t, s, filter) : x_t;
        const acc_t after = t + 1 < cols ? rows::MarginRow(row + t + 1, zero.data() + t + 1, cols - t - 1, s, filter) : x_t;
        row[t] = x_t;
        zero[t] = !(c >= acc_t(-1) && c <= acc_t(1));
        target_logit[i] = x_t;
        tile_max[i] = std::max({before, after, x_t});
      }
      tile_sum[i] = static_cast<acc_t>(rows::ExpRow(row, zero.data(), out + i * cols, cols, tile_max[i]));
    }
  });
}

// Tile of exp(x − tile max) → g = ∂loss/∂x = coef·(p − onehot), p = e·exp(tile max − M)/S;
// zero where marked. g may be the tile itself (float32 recompute).
template <typename acc_t, typename buf_t>
void GradTile(const buf_t* tile, acc_t* g, int64_t batch, int64_t cols, int64_t col0, const int64_t* targets,
              const acc_t* tile_max, const acc_t* row_max, const acc_t* row_sum, double coef) {
  at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      const double scale = std::exp(static_cast<double>(tile_max[i] - row_max[i])) / row_sum[i];
      const int64_t t = targets[i] < 0 ? -1 : targets[i] - col0;
      const bool target_here = t >= 0 && t < cols && !std::signbit(static_cast<acc_t>(tile[i * cols + t]));  // read before g overwrites it
      rows::GradRow(tile + i * cols, g + i * cols, cols, static_cast<acc_t>(coef * scale));
      if (target_here) g[i * cols + t] -= static_cast<acc_t>(coef);
    }
  });
}

}  // namespace

Kernel::Kernel(int64_t embedding_size, c10::ScalarType math_dtype, int64_t tile_rows, bool recompute)
    : dim_(embedding_size), math_(math_dtype), tile_rows_(tile_rows), recompute_(recompute) {
  TORCH_CHECK(math_ == at::kFloat || math_ == at::kDouble, "Partial FC: math dtype must be float32 or float64");
  TORCH_CHECK(dim_ > 0 && tile_rows_ > 0, "Partial FC: embedding size and tile rows must be positive");
  anchor_ = at::zeros({}, at::kFloat).requires_grad_(true);
}

void Kernel::Expect(Phase phase, const char* call) const {
  static const char* const kNames[] = {"idle", "sampled", "logits", "sums", "loss", "backward"};
  TORCH_CHECK(phase_ == phase, "Partial FC kernel: ", call, " out of order (after the ", kNames[static_cast<int>(phase_)],
              " phase, expected the ", kNames[static_cast<int>(phase)], " phase)");
}

at::Tensor Kernel::Reserve(at::Tensor& buffer, int64_t numel, c10::ScalarType dtype) {
  if (!buffer.defined() || buffer.numel() < numel || buffer.scalar_type() != dtype) {
    buffer = at::Tensor();  // free the old block before taking the larger one
    buffer = at::empty({std::max<int64_t>(numel, 1)}, at::TensorOptions().dtype(dtype));
  }
  return buffer.narrow(0, 0, numel);
}

at::Tensor Kernel::Tile(int64_t t) const {
  const int64_t cols = TileCols(t);
  if (!recompute_) return exp_buf_.narrow(0, t * tile_rows_ * batch_, batch_ * cols).view({batch_, cols});
  return InPlace() ? Scratch(cols) : exp_buf_.narrow(0, 0, batch_ * cols).view({batch_, cols});
}

at::Tensor Kernel::TileNorms(int64_t t) const { return wnorm_.narrow(0, recompute_ ? 0 : t * tile_rows_, TileCols(t)); }

at::Tensor Kernel::Scratch(int64_t cols) const { return scratch_buf_.narrow(0, 0, batch_ * cols).view({batch_, cols}); }

at::Tensor Kernel::TileGrad(int64_t t) {
  if (recompute_) ForwardTile(t, /*compute_norms=*/true);  // recompute keeps the norms of one tile
  at::Tensor g = Scratch(TileCols(t));
  const double coef = margin_.s * grad_scale_ / static_cast<double>(batch_);  // (p − onehot)/B · ∂loss, through ·s
  DispatchTypes(math_, weight_.scalar_type(), [&](auto acc_tag, auto store_tag) {
    using acc_t = typename decltype(acc_tag)::type;
    using store_t = typename decltype(store_tag)::type;
    GradTile<acc_t, store_t>(static_cast<const store_t*>(Tile(t).data_ptr()), g.data_ptr<acc_t>(), batch_, TileCols(t),
                             t * tile_rows_, targets_.data_ptr<int64_t>(), tile_max_[t].data_ptr<acc_t>(),
                             row_max_.data_ptr<acc_t>(), row_sum_.data_ptr<acc_t>(), coef);
  });
  return g;
}

void Kernel::GatherTile(int64_t t, bool compute_norms) {
  const int64_t r0 = t * tile_rows_, cols = TileCols(t);
  DispatchTypes(math_, weight_.scalar_type(), [&](auto acc_tag, auto store_tag) {
    using acc_t = typename decltype(acc_tag)::type;
    using store_t = typename decltype(store_tag)::type;
    GatherRows<acc_t, store_t>(static_cast<const store_t*>(weight_.data_ptr()), dim_, Index(), r0, cols,
                               wtile_.data_ptr<acc_t>(), TileNorms(t).data_ptr<acc_t>(), compute_norms);
  });
}

void Kernel::ForwardTile(int64_t t, bool compute_norms) {
  const int64_t cols = TileCols(t);
  GatherTile(t, compute_norms);
  const at::Tensor out = Tile(t), logits = InPlace() ? out : Scratch(cols);
  Matmul(logits, xhat_, wtile_.narrow(0, 0, cols).t(), /*accumulate=*/false);
  DispatchTypes(math_, weight_.scalar_type(), [&](auto acc_tag, auto store_tag) {
    using acc_t = typename decltype(acc_tag)::type;
    using store_t = typename decltype(store_tag)::type;
    MarginExpTile<acc_t, store_t>(logits.data_ptr<acc_t>(), static_cast<store_t*>(out.data_ptr()), batch_, cols,
                                  t * tile_rows_, targets_.data_ptr<int64_t>(), margin_, tile_max_[t].data_ptr<acc_t>(),
                                  tile_sum_[t].data_ptr<acc_t>(), target_logit_.data_ptr<acc_t>());
  });
}

at::Tensor Kernel::Logits(const at::Tensor& embeddings, const at::Tensor& weight, const Margin& margin) {
  Expect(Phase::kSampled, "Logits");
  KernelGuard guard;
  TORCH_CHECK(embeddings.dim() == 2 && embeddings.size(1) == dim_, "Partial FC: embeddings must be [B, ", dim_,
              "], got ", embeddings.sizes());
  TORCH_CHECK(embeddings.size(0) == batch_, "Partial FC: ", embeddings.size(0), " embeddings for ", batch_, " labels");
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == num_local_ && weight.size(1) == dim_ && weight.is_contiguous(),
              "Partial FC: the shard must be a contiguous [", num_local_, ", ", dim_, "] tensor, got ", weight.sizes());
  TORCH_CHECK((margin.m1 == 1.0 && margin.m3 == 0.0) || margin.m3 > 0,
              "Partial FC: unsupported margin (ArcFace needs m1 = 1 and m3 = 0, CosFace m3 > 0)");
  weight_ = weight;
  margin_ = margin;

  // F.normalize(embeddings) in the math dtype
  const at::Tensor x = embeddings.to(math_).contiguous();
  xnorm_ = at::linalg_vector_norm(x, 2, at::IntArrayRef{1});
  xhat_ = x / xnorm_.clamp_min(kNormEps).unsqueeze(1);

  const int64_t tiles = NumTiles();
  const int64_t rows = std::min(tile_rows_, num_sampled_);
  if (recompute_ && InPlace()) {
    exp_buf_ = at::Tensor();  // the exp values overwrite the logits in Scratch
  } else {
    Reserve(exp_buf_, batch_ * (recompute_ ? rows : num_sampled_), weight.scalar_type());
  }
  Reserve(scratch_buf_, batch_ * rows, math_);
  wtile_ = Reserve(wtile_buf_, rows * dim_, math_).view({rows, dim_});
  wnorm_ = Reserve(wnorm_buf_, recompute_ ? rows : num_sampled_, math_);
  tile_max_ = at::empty({tiles, batch_}, math_);
  tile_sum_ = at::empty({tiles, batch_}, math_);
  target_logit_ = at::zeros({batch_}, math_);
  for (int64_t t = 0; t < tiles; ++t) ForwardTile(t, /*compute_norms=*/true);
  phase_ = Phase::kLogits;
  if (tiles == 0) return at::full({batch_}, -std::numeric_limits<double>::infinity(), math_);
  return std::get<0>(tile_max_.max(0));
}

at::Tensor Kernel::ExpSums(const at::Tensor& row_max) {
  Expect(Phase::kLogits, "ExpSums");
  KernelGuard guard;
  TORCH_CHECK(row_max.numel() == batch_, "Partial FC: row max has ", row_max.numel(), " entries for a batch of ", batch_);
  row_max_ = row_max.to(math_).contiguous().clone();
  at::Tensor out = at::empty({batch_, 2}, math_);
  AT_DISPATCH_FLOATING_TYPES(math_, "pfc_exp_sums", [&] {
    const scalar_t* tmax = tile_max_.data_ptr<scalar_t>();
    const scalar_t* tsum = tile_sum_.data_ptr<scalar_t>();
    const scalar_t* m = row_max_.data_ptr<scalar_t>();
    const scalar_t* xt = target_logit_.data_ptr<scalar_t>();
    const int64_t* targets = targets_.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t tiles = NumTiles();
    for (int64_t i = 0; i < batch_; ++i) {
      double sum = 0;
      for (int64_t t = 0; t < tiles; ++t) {
        sum += tsum[t * batch_ + i] * std::exp(static_cast<double>(tmax[t * batch_ + i] - m[i]));
      }
      o[2 * i] = static_cast<scalar_t>(sum);
      o[2 * i + 1] = targets[i] >= 0 ? std::exp(xt[i] - m[i]) : scalar_t(0);
    }
  });
  phase_ = Phase::kSums;
  return out;
}

at::Tensor Kernel::Loss(const at::Tensor& sums) {
  Expect(Phase::kSums, "Loss");
  KernelGuard guard;
  TORCH_CHECK(sums.dim() == 2 && sums.size(0) == batch_ && sums.size(1) == 2, "Partial FC: sums must be [", batch_, ", 2]");
  const at::Tensor s = sums.to(math_).contiguous();
  row_sum_ = s.select(1, 0).contiguous();
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(math_, "pfc_loss", [&] {
    const scalar_t* v = s.data_ptr<scalar_t>();
    for (int64_t i = 0; i < batch_; ++i) {
      // DistCrossEntropy: log of the target probability clamped at 1e-30
      const scalar_t p = std::max(v[2 * i + 1] / v[2 * i], static_cast<scalar_t>(1e-30));
      total += std::log(p);
    }
  });
  phase_ = Phase::kLoss;
  return at::scalar_tensor(-total / static_cast<double>(batch_), math_);
}

at::Tensor Kernel::Backward(const at::Tensor& grad_loss) {
  Expect(Phase::kLoss, "backward");
  KernelGuard guard;
  grad_scale_ = grad_loss.item<double>();
  at::Tensor grad_xhat = at::zeros({batch_, dim_}, math_);
  for (int64_t t = 0; t < NumTiles(); ++t) {
    const at::Tensor g = TileGrad(t);
    if (!recompute_) GatherTile(t, /*compute_norms=*/false);  // recompute gathered them for G
    Matmul(grad_xhat, g, wtile_.narrow(0, 0, TileCols(t)), /*accumulate=*/true);
  }
  phase_ = Phase::kBackward;
  // F.normalize's backward: (g − x̂ (x̂·g)) / ‖x‖ where ‖x‖ ≥ eps, g / eps below; in place, so
  // no [B, D] temporaries stay in the allocator's cache
  const at::Tensor n = xnorm_.unsqueeze(1);
  const at::Tensor dot = (xhat_ * grad_xhat).sum(1, /*keepdim=*/true).masked_fill_(n < kNormEps, 0);
  return grad_xhat.addcmul_(xhat_, dot, -1).div_(n.clamp_min(kNormEps));
}

at::Tensor Kernel::SampledIndex() const {
  TORCH_CHECK(phase_ != Phase::kIdle || generation_ > 0, "Partial FC: nothing sampled yet");
  return full_ ? at::arange(num_sampled_, at::kLong) : index_.to(at::kLong);
}

at::Tensor Kernel::Targets() const {
  TORCH_CHECK(targets_.defined(), "Partial FC: nothing sampled yet");
  return targets_.clone();
}

int64_t Kernel::BufferBytes() const {
  int64_t bytes = 0;
  for (const at::Tensor* b : {&index_buf_, &exp_buf_, &scratch_buf_, &wtile_buf_, &wnorm_buf_, &acc_grad_}) {
    if (b->defined()) bytes += b->nbytes();
  }
  return bytes;
}

}  // namespace arcface::pfc
