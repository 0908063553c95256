// The loops of the Partial FC kernel that touch every element: one row (of a class centre, or of
// the logits of one sample) per call. rows.cc compiles them vectorised, with AVX-512, AVX2
// and baseline versions chosen at run time. acc_t is the math type, store_t the storage type.
#pragma once

#include <cstdint>

namespace arcface::pfc::rows {

// dst = src in the math type; returns ‖src‖.
template <typename acc_t, typename store_t>
acc_t Load(const store_t* src, acc_t* dst, int64_t n);

// dst = src in the math type.
template <typename acc_t, typename store_t>
void Convert(const store_t* src, acc_t* dst, int64_t n);

// x *= a
template <typename acc_t>
void Scale(acc_t* x, acc_t a, int64_t n);

// Cosines → logits for entries that are not the target: clamp to [−1, 1], inter-class filtering
// (above the threshold → 0; threshold 0 turns it off), ×s. zero[j] marks entries that pass no
// gradient (clamped or filtered). Returns the largest logit.
template <typename acc_t>
acc_t MarginRow(acc_t* x, uint8_t* zero, int64_t n, acc_t s, acc_t threshold);

// out = exp(x − max) in the buffer type, negated where zero[j] (the sign bit marks "no gradient");
// returns Σ exp(x − max). out may be x itself.
template <typename acc_t, typename buf_t>
double ExpRow(const acc_t* x, const uint8_t* zero, buf_t* out, int64_t n, acc_t max);

// Marked exp values → ∂loss/∂logit without the one-hot: g = e·factor, 0 where the sign bit is set.
// g may be e itself (float32).
template <typename acc_t, typename buf_t>
void GradRow(const buf_t* e, acc_t* g, int64_t n, acc_t factor);

// F.normalize's backward for a row with ‖w‖ = norm ≥ eps: g = (g − ŵ(ŵ·g)) / norm, ŵ = w / norm.
template <typename acc_t, typename store_t>
void NormalizeBackward(const store_t* w, acc_t* g, int64_t n, acc_t norm);

// torch.optim.SGD on one row (dampening 0): d = g + wd·w; buf = mu·buf + d (buf may be null: no
// momentum); w −= lr·buf.
template <typename acc_t, typename store_t>
void SgdRow(store_t* w, store_t* buf, const acc_t* g, int64_t n, acc_t lr, acc_t mu, acc_t wd);

struct AdamwRowParams {
  double decay;      // 1 − lr·weight_decay
  double beta1, one_minus_beta1, beta2, one_minus_beta2;
  double step_size;  // lr / (1 − β1ᵗ)
  double bc2_sqrt;   // √(1 − β2ᵗ)
  double eps;
};

// torch.optim.AdamW on one row.
template <typename acc_t, typename store_t>
void AdamwRow(store_t* w, store_t* m, store_t* v, const acc_t* g, int64_t n, const AdamwRowParams& p);

}  // namespace arcface::pfc::rows
