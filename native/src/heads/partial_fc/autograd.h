// The Partial FC loss as an autograd node (autograd.cc).
#pragma once

#include "heads/partial_fc/kernel.h"

namespace arcface::pfc {

// The kernel's Loss phase, recorded so that backward() reaches the embeddings.
at::Tensor LossWithBackward(const c10::intrusive_ptr<Kernel>& kernel, const at::Tensor& embeddings, const at::Tensor& sums);

}  // namespace arcface::pfc
