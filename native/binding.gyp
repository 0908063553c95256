{
  # The only C++ of arcface-ts, in folders that mirror the TypeScript layers (src/core: tensors,
  # dispatch, autograd, allocator; optim; distributed; heads; data); includes are written from src/.
  # Links Debian's libtorch (CPU, 1.13) by default; ARCFACE_TORCH_DIR=<site-packages>/torch builds against
  # a pip libtorch instead (2.x), ARCFACE_CUDA=1 with a CUDA one. The variant's flags (C++ standard, ABI,
  # include and library paths, CUDA parts) come from torch-config.sh, shared with build.sh (no node-gyp).
  "targets": [
    {
      "target_name": "arcface_native",
      "sources": [
        "src/addon.cc",
        "src/core/tensor_wrap.cc",
        "src/core/dispatch.cc",
        "src/core/convert.cc",
        "src/core/autograd.cc",
        "src/core/runtime.cc",
        "src/core/cpu_allocator.cc",
        "src/core/device.cc",
        "src/optim/fused_step.cc",
        "src/distributed/process_group.cc",
        "src/distributed/autograd.cc",
        "src/distributed/reducer.cc",
        "src/heads/partial_fc/kernel.cc",
        "src/heads/partial_fc/gemm.cc",
        "src/heads/partial_fc/sampler.cc",
        "src/heads/partial_fc/optim.cc",
        "src/heads/partial_fc/rows.cc",
        "src/heads/partial_fc/autograd.cc",
        "src/heads/partial_fc/binding.cc",
        "src/data/image_codec.cc",
        "src/data/image_augment.cc",
        "src/data/recordio_read.cc",
        "src/data/face_render.cc",
        "src/data/binding.cc"
      ],
      "include_dirs": ["src", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations",
                    "<!@(sh torch-config.sh cflags)"],
      "libraries": ["<!@(sh torch-config.sh libs)"]
    }
  ]
}
