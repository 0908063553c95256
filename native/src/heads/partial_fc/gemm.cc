// Float32 products go to oneDNN's sgemm when libtorch brought libdnnl along (Debian's libtorch
// links it): on these AVX-512 machines it runs at ~300 GFLOP/s where at::mm's OpenBLAS (Haswell
// kernels) reaches 16–70, worst for the step's K = batch shape. Anything else goes to at::mm.
// ARCFACE_PFC_GEMM=aten forces at::mm (for comparisons).
#include "heads/partial_fc/gemm.h"

#include <ATen/ATen.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace arcface::pfc {

namespace {

// dnnl_sgemm: row-major C = alpha·op(A)·op(B) + beta·C; returns dnnl_success (0) or an error.
using SgemmFn = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                        int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

SgemmFn ResolveSgemm() {
  const char* choice = std::getenv("ARCFACE_PFC_GEMM");
  if (choice && std::strcmp(choice, "aten") == 0) return nullptr;
  void* lib = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_NOLOAD);  // only if libtorch already loaded it
  return lib ? reinterpret_cast<SgemmFn>(dlsym(lib, "dnnl_sgemm")) : nullptr;
}

struct Operand {
  const float* data;
  char trans;
  int64_t ld;
};

// A row-major view of t, or of its transpose; false if neither (then at::mm copes).
bool AsOperand(const at::Tensor& t, Operand* op) {
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(1, t.size(1))) {
    *op = {t.data_ptr<float>(), 'N', t.stride(0)};
    return true;
  }
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(0))) {
    *op = {t.data_ptr<float>(), 'T', t.stride(1)};
    return true;
  }
  return false;
}

}  // namespace

void Matmul(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  static const SgemmFn sgemm = ResolveSgemm();
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  if (m == 0 || n == 0) return;
  Operand oa, ob;
  if (sgemm && k > 0 && out.scalar_type() == at::kFloat && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
      out.is_contiguous() && AsOperand(a, &oa) && AsOperand(b, &ob)) {
    const int status = sgemm(oa.trans, ob.trans, m, n, k, 1.0f, oa.data, oa.ld, ob.data, ob.ld, accumulate ? 1.0f : 0.0f,
                             out.data_ptr<float>(), n);
    TORCH_CHECK(status == 0, "Partial FC: dnnl_sgemm failed (status ", status, ")");
    return;
  }
  if (accumulate) {
    const_cast<at::Tensor&>(out).addmm_(a, b);
  } else {
    at::mm_out(const_cast<at::Tensor&>(out), a, b);
  }
}

}  // namespace arcface::pfc
