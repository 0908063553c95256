{
  # The only C++ of arcface-ts, in folders that mirror the TypeScript layers (src/core: tensors,
  # dispatch, autograd, allocator; optim; distributed; heads; data); includes are written from src/.
  # Links Debian's libtorch (CPU) by default; set
  # ARCFACE_TORCH_DIR=<site-packages>/torch to build against a pip/CUDA libtorch instead.
  "variables": {
    "torch_dir%": "<!(echo ${ARCFACE_TORCH_DIR:-})",
    "cuda%": "<!(echo ${ARCFACE_CUDA:-0})"
  },
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
        "src/optim/fused_step.cc",
        "src/distributed/process_group.cc",
        "src/distributed/autograd.cc",
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
      "defines": ["USE_C10D_GLOO", "NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "conditions": [
        ["torch_dir==''", {
          "include_dirs": ["/usr/include/torch/csrc/api/include"],
          "libraries": ["-ltorch_cpu", "-lc10", "-ldl", "-lturbojpeg", "-lpng"]
        }, {
          "include_dirs": ["<(torch_dir)/include", "<(torch_dir)/include/torch/csrc/api/include"],
          "libraries": ["-L<(torch_dir)/lib", "-Wl,-rpath,<(torch_dir)/lib", "-ltorch_cpu", "-lc10", "-ldl", "-lturbojpeg", "-lpng"]
        }],
        ["cuda=='1'", {
          "defines": ["ARCFACE_CUDA=1"],
          "libraries": ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"]
        }]
      ]
    }
  ]
}
