// The fused Engram layer as a differentiable torch function, for C++ callers (the tiny LM) — the same function
// torch.ops.hashmem.engram_layer runs. Shapes and semantics: include/hashmem/engram_layer.hpp; empty tensors
// stand for absent biases / conv weights. Float32, CPU. Includes torch headers: use only from torch code.
#pragma once

#include <torch/torch.h>

namespace hashmem::torch_ops {

torch::Tensor engram_layer(torch::Tensor h, torch::Tensor e, torch::Tensor key_w, torch::Tensor key_b,
                           torch::Tensor value_w, torch::Tensor value_b, torch::Tensor norm1, torch::Tensor norm2,
                           torch::Tensor conv_norm, torch::Tensor conv_w, int64_t kernel, int64_t dilation);

}  // namespace hashmem::torch_ops
