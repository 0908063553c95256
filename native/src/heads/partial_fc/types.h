// Helpers shared by the Partial FC kernel files (pfc_*.cc): type dispatch and the guard every
// entry point takes.
#pragma once

#include <c10/core/GradMode.h>
#include <c10/core/ScalarType.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

namespace arcface::pfc {

constexpr double kNormEps = 1e-12;  // F.normalize's eps

// The kernel's own libtorch calls: no autograd recording, and no autocast (which would turn its
// float32 GEMMs into bfloat16 ones when the caller runs under autocast).
struct KernelGuard {
  c10::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast{c10::autocast_dispatch_keyset};
};

template <typename T>
struct Tag {
  using type = T;
};

// Calls fn(Tag<acc_t>, Tag<store_t>) for the math type and the storage type of the class centres.
template <typename Fn>
void DispatchTypes(c10::ScalarType math, c10::ScalarType storage, Fn&& fn) {
  if (math == c10::kDouble) {
    TORCH_CHECK(storage == c10::kDouble, "Partial FC: float64 math needs float64 class centres, got ", storage);
    return fn(Tag<double>{}, Tag<double>{});
  }
  switch (storage) {
    case c10::kFloat: return fn(Tag<float>{}, Tag<float>{});
    case c10::kBFloat16: return fn(Tag<float>{}, Tag<c10::BFloat16>{});
    case c10::kHalf: return fn(Tag<float>{}, Tag<c10::Half>{});
    default: TORCH_CHECK(false, "Partial FC: class centres stored as ", storage, " (expected float32, bfloat16, float16 or float64)");
  }
}

}  // namespace arcface::pfc
