// Matrix products of the Partial FC kernel (gemm.cc).
#pragma once

#include <ATen/core/Tensor.h>

namespace arcface::pfc {

// out = a·b, or out += a·b when accumulate. 2-D; a and b may be transposed views, out is a
// contiguous [rows, cols] block.
void Matmul(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate);

}  // namespace arcface::pfc
