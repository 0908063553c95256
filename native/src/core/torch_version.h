// The libtorch this addon is compiled against, for the few APIs that differ between Debian's 1.13
// (the default build) and the pip wheels' 2.x (torch/include of an installed PyTorch, CPU or CUDA).
// One source for every version: differences are compile-time checks on these macros, never a file
// per version. Built and tested against 1.13.1, 2.13.0 (CPU) and 2.14.1 (CUDA 13).
#pragma once

#include <torch/version.h>  // TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION ("2.13.0")

#define ARCFACE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
