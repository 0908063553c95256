{
  # The only C++ of arcface-ts. Links Debian's libtorch (CPU) by default; set
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
        "src/tensor_wrap.cc",
        "src/dispatch.cc",
        "src/convert.cc",
        "src/autograd.cc",
        "src/optim.cc",
        "src/runtime.cc",
        "src/cpu_allocator.cc",
        "src/dist.cc",
        "src/dist_autograd.cc",
        "src/pfc_kernel.cc",
        "src/pfc_gemm.cc",
        "src/pfc_sampler.cc",
        "src/pfc_optim.cc",
        "src/pfc_rows.cc",
        "src/pfc_autograd.cc",
        "src/pfc_binding.cc",
        "src/image_codec.cc",
        "src/image_augment.cc",
        "src/recordio_read.cc",
        "src/face_render.cc",
        "src/data_binding.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
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
