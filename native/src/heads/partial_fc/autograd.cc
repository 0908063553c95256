// The autograd node of the Partial FC loss: loss.backward() runs the kernel's backward and hands
// ∂loss/∂embeddings to the backbone, as DistCrossEntropyFunc does in arcface_torch. Kept in its own
// translation unit: custom_function.h is slow to compile.
#include "heads/partial_fc/autograd.h"

#include <torch/csrc/autograd/custom_function.h>

namespace arcface::pfc {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PartialFcLoss : torch::autograd::Function<PartialFcLoss> {
  // anchor: a leaf that requires grad, so the loss has a backward even when the embeddings do not
  // (training the head alone); it never receives a gradient.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& embeddings, const at::Tensor& anchor,
                            const at::Tensor& sums, const c10::intrusive_ptr<Kernel>& kernel) {
    ctx->saved_data["kernel"] = c10::IValue::make_capsule(kernel);
    ctx->saved_data["generation"] = kernel->generation();
    ctx->saved_data["dtype"] = static_cast<int64_t>(embeddings.scalar_type());
    return kernel->Loss(sums);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto kernel = c10::static_intrusive_pointer_cast<Kernel>(ctx->saved_data["kernel"].toCapsule());
    TORCH_CHECK(kernel->generation() == ctx->saved_data["generation"].toInt(),
                "PartialFC: backward of a loss from an earlier forward(); the head keeps one step's buffers, "
                "so call backward() on the latest loss (and step() before the next forward)");
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {kernel->Backward(grads[0]).to(dtype), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor LossWithBackward(const c10::intrusive_ptr<Kernel>& kernel, const at::Tensor& embeddings, const at::Tensor& sums) {
  return PartialFcLoss::apply(embeddings, kernel->anchor(), sums, kernel);
}

}  // namespace arcface::pfc
