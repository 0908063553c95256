// Partial FC on one shard of class centres: sampling, the fused margin-softmax cross-entropy with
// its backward, and the sparse optimizer step (arcface_torch's PartialFC_V2 + CombinedMarginLoss +
// DistCrossEntropy, without a dense gradient).
//
// A Kernel belongs to one PartialFC head. It holds what a step carries from phase to phase and the
// buffers reused from step to step; nothing class-centre-sized is allocated per step. The sampled
// rows are processed in tiles of `tile_rows`. Forward computes each tile's exp(logit − tile max)
// (ForwardTile); backward and step need those values again, tile by tile. Two ways to have them:
//
//   keep       one B × S buffer holds them in the shard's storage dtype, tile-major (tile t is a
//              contiguous [B, cols_t] block), so a float32 tile is the GEMM's output in place
//              (16-bit storage goes through a float32 scratch tile and halves the buffer).
//   recompute  only the sample and per-row statistics are kept ([tiles, B] tile max and sum, [B]
//              target logit); backward and step run ForwardTile again on a B × tile_rows tile: the
//              same code on the same inputs, so bit-identical values, for two more GEMMs per tile.
//
// A step:
//
//   Sample    positives of the batch that fall in this shard + uniform negatives (sampler.cc)
//   Logits    per tile: gather and normalise the rows (math dtype), GEMM x̂·ŵᵀ, clamp,
//             inter-class filter, margin, scale; exp(x − tile max) and Σ per row
//             → local row max                                          (kernel.cc)
//   ~~~ seam 1: all-reduce MAX of the row max over ranks (identity with one rank) ~~~
//   ExpSums   tile sums rescaled to the global max: [Σ exp(x − M), exp(x_target − M)] per row
//   ~~~ seam 2: all-reduce SUM of both columns ~~~
//   Loss      −mean log max(p_target, 1e-30), as DistCrossEntropy
//   Backward  per tile: G = ∂loss/∂logits from the exp values into the scratch tile; rows gathered
//             again; one GEMM accumulates ∂loss/∂x̂ → ∂loss/∂embeddings
//   Step      per tile: G again (elementwise), one GEMM gives ∂loss/∂ŵ; each sampled row and its
//             optimizer state are read, updated and written once (optim.cc)
//
// Entries whose gradient is zero (cosine clamped to [−1, 1], or filtered) are stored with the sign
// bit set (exp values are never negative), so no mask buffer is needed. Products go through
// gemm.cc, element loops through the vectorised rows of rows.cc; the loss's autograd node
// is in autograd.cc, the JS binding in binding.cc.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <unordered_map>
#include <vector>

namespace arcface::pfc {

// arcface_torch's CombinedMarginLoss: ArcFace when m1 == 1 and m3 == 0, else CosFace (m3 > 0).
struct Margin {
  double s = 64, m1 = 1, m2 = 0.5, m3 = 0;
  double filter = 0;  // interclass_filtering_threshold (0: off)
};

struct SgdOptions {
  double lr = 0.1, momentum = 0, weight_decay = 0;
};

struct AdamwOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class Kernel : public torch::CustomClassHolder {
 public:
  // math_dtype: kFloat (any storage), or kDouble (float64 storage; a reference precision).
  // recompute: keep no B × S buffer (see above).
  Kernel(int64_t embedding_size, c10::ScalarType math_dtype, int64_t tile_rows, bool recompute);

  // labels: global labels (int64 [B], validated). Keeps every positive in
  // [class_start, class_start + num_local) and uniform negatives, num_sample in all (all rows when
  // num_sample >= num_local; only the positives when they are more). Returns the sample size.
  int64_t Sample(const at::Tensor& labels, int64_t class_start, int64_t num_local, int64_t num_sample);
  at::Tensor Logits(const at::Tensor& embeddings, const at::Tensor& weight, const Margin& margin);
  at::Tensor ExpSums(const at::Tensor& row_max);
  at::Tensor Loss(const at::Tensor& sums);
  // ∂loss/∂embeddings (math dtype); keeps ∂loss/∂loss for the step.
  at::Tensor Backward(const at::Tensor& grad_loss);
  // ∂loss/∂(sampled rows) as a new [S, D] tensor: the gradient the step uses, for inspection.
  at::Tensor RowGrads();
  // Gradient accumulation over micro-batches: adds the last backward's row gradients to a sparse
  // accumulator (shard row → summed ∂loss/∂w) and ends the step, so the next forward may run; the
  // next SgdStep/AdamwStep applies the sum (with the pending backward's rows, if any).
  void Accumulate();
  // Drops the pending gradient (accumulated and last backward): a step a loss scaler skipped.
  void DiscardGrad();
  // Multiplies the pending gradient (accumulated and last backward): a loss scaler's unscale.
  void ScaleGrad(double factor);
  int64_t accumulated_rows() const { return static_cast<int64_t>(acc_rows_.size()); }
  // The steps apply the accumulated rows when there are any, else the last backward's.
  void SgdStep(const at::Tensor& momentum_buffer, const SgdOptions& o);
  void AdamwStep(const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, const at::Tensor& steps, const AdamwOptions& o);

  at::Tensor SampledIndex() const;  // rows of the shard in the sample (int64 [S], sorted)
  at::Tensor Targets() const;       // column of each row's centre in the sample, −1 if not here
  int64_t BufferBytes() const;      // what the buffers kept from step to step hold
  int64_t generation() const { return generation_; }
  const at::Tensor& anchor() const { return anchor_; }
  c10::ScalarType math_dtype() const { return math_; }

 private:
  enum class Phase { kIdle, kSampled, kLogits, kSums, kLoss, kBackward };
  void Expect(Phase phase, const char* call) const;
  int64_t NumTiles() const { return (num_sampled_ + tile_rows_ - 1) / tile_rows_; }
  int64_t TileCols(int64_t t) const { return std::min(tile_rows_, num_sampled_ - t * tile_rows_); }
  bool InPlace() const { return weight_.scalar_type() == math_; }  // exp values overwrite the logits
  const int32_t* Index() const { return full_ ? nullptr : index_.data_ptr<int32_t>(); }  // null: row = position
  at::Tensor TileNorms(int64_t t) const;          // [cols] norms of tile t's rows
  at::Tensor Tile(int64_t t) const;               // [B, cols] exp values of tile t, storage dtype
  at::Tensor Scratch(int64_t cols) const;         // [B, cols] math-type tile: logits before exp, G
  // Gathers tile t's rows of the shard into wtile_, normalised; computes their norms first if asked.
  void GatherTile(int64_t t, bool compute_norms);
  // Tile t's logits → exp values in Tile(t), tile max and sum, target logits: the forward's math,
  // which recompute runs again (the same code on the same rows: it rewrites the same values).
  void ForwardTile(int64_t t, bool compute_norms);
  // ∂loss/∂logits of tile t (from its exp values, with the backward's ∂loss) in Scratch. With
  // recompute it runs ForwardTile first, so wtile_ then holds the tile's rows.
  at::Tensor TileGrad(int64_t t);
  // ∂loss/∂(normalised rows) of tile t: Gᵀ·x̂ into the first cols rows of wtile_ (its rows are
  // not needed once G is known).
  at::Tensor TileGradHat(int64_t t);
  void ExpectGradient(const char* what) const;   // a backward left a gradient to apply
  // Runs update(position in the sample, row of the shard, w_row, grad_row) over the sampled rows,
  // grad_row being ∂loss/∂w_row (threads share the work: rows are distinct).
  template <typename Update>
  void ForEachSampledRow(const char* what, Update&& update);
  // The same over the accumulated rows, then empties the accumulator.
  template <typename Update>
  void ForEachAccumulatedRow(Update&& update);
  // What a step updates: the accumulated rows if any (the last backward folded in), else the sample.
  template <typename Update>
  void ForEachUpdateRow(const char* what, Update&& update);
  static at::Tensor Reserve(at::Tensor& buffer, int64_t numel, c10::ScalarType dtype);

  const int64_t dim_;
  const c10::ScalarType math_;
  const int64_t tile_rows_;
  const bool recompute_;
  at::Tensor anchor_;  // a leaf that requires grad, so the loss has a backward even for frozen embeddings

  Phase phase_ = Phase::kIdle;
  int64_t generation_ = 0;
  Margin margin_;
  int64_t batch_ = 0, num_local_ = 0, num_sampled_ = 0;
  bool full_ = true;           // every row of the shard is in the sample (index_ unused)
  at::Tensor weight_;          // the shard of the current step (shares storage with the JS tensor)
  at::Tensor index_buf_, index_, targets_;  // index_: int32 rows of the sample, a view of index_buf_
  std::vector<int64_t> positives_;
  at::Tensor xhat_, xnorm_;    // normalised embeddings [B, D], their norms [B]
  at::Tensor exp_buf_;         // exp values in the storage dtype: keep: B × S, tile-major;
                               // recompute: B × tile_rows (none for float32: Scratch holds them)
  at::Tensor scratch_buf_;     // B × tile_rows, math dtype
  at::Tensor wtile_buf_, wtile_;  // normalised rows of a tile [cols, D], then their gradients
  at::Tensor wnorm_buf_, wnorm_;    // norms of the sampled rows: keep [S]; recompute [tile_rows], of
                                    // the last tile gathered (wnorm_: a view)
  at::Tensor tile_max_, tile_sum_;  // [tiles, B]: row max of each tile, Σ exp(x − tile max)
  at::Tensor target_logit_;    // [B] final target logit where the target is in this shard
  at::Tensor row_max_, row_sum_;    // [B] global, after the reductions
  double grad_scale_ = 0;      // ∂loss/∂loss of the backward, for the step
  std::unordered_map<int64_t, int64_t> acc_slot_;  // shard row → its row in acc_grad_
  std::vector<int64_t> acc_rows_;                  // shard rows in acc_grad_ order
  at::Tensor acc_grad_;        // [capacity, D] math dtype: summed ∂loss/∂w of the accumulated rows
};

}  // namespace arcface::pfc
