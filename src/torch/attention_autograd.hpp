// hashmem's attention kernels (include/hashmem/attention.hpp) as torch functions with autograd, for C++ callers
// (the tiny LM) — the same functions torch.ops.hashmem.attention_* run. Float32, CPU, any strides (inputs are
// made contiguous). Leading dimensions are flattened into independent heads and must agree across the inputs:
// e.g. q [B, H, n, d] from the model's permuted projections. Includes torch headers: use only from torch code.
//
// Backward: exact — q, k, v; lsh — qk and v (nothing through the hash, which is piecewise constant); bucket —
// v only (the output is a mean of values with weights fixed by the hashes; q, k and tokens get no gradient);
// signature top-k — none (decoding).
#pragma once

#include <torch/torch.h>

#include <string>

namespace hashmem::torch_ops {

// q [..., n, d], k [..., m, d], v [..., m, dv] → [..., n, dv] = softmax(scale·q·kᵀ [causal: keys j <= i + m − n]) v.
// scale 0 means 1/√d.
torch::Tensor attention_exact(torch::Tensor q, torch::Tensor k, torch::Tensor v, bool causal, double scale);

// Reformer LSH attention with shared QK: qk [..., n, d] (queries; keys are qk/‖qk‖), v [..., n, dv] → [..., n, dv].
// buckets 0: automatic (power of two >= 2n/chunk). Deterministic for a seed.
torch::Tensor attention_lsh(torch::Tensor qk, torch::Tensor v, int64_t rounds, int64_t buckets, int64_t chunk,
                            bool causal, int64_t seed);

// Hash-bucket attention: q, k [..., n, d], v [..., n, dv], tokens int64 [..., n] (used when key == "token";
// may be empty for "lsh") → [..., n, dv]. key: "lsh" (sign bits of q/k, hashed) or "token" (the token id, hashed);
// hash: "xxh3" or "sha256".
torch::Tensor attention_bucket(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor tokens,
                               const std::string& key, const std::string& hash, int64_t bucket_bits, int64_t sign_bits,
                               int64_t rounds, bool causal, int64_t seed);

// SimHash signatures of keys [..., m, d] → int64 [..., m] (the bits' pattern; keep them beside the KV cache and
// append one per new key).
torch::Tensor attention_signatures(torch::Tensor k, int64_t bits, int64_t seed);

// One query per head against its cache: q [..., d], k [..., m, d], v [..., m, dv], signatures int64 [..., m] from
// attention_signatures with the same bits and seed → [..., dv].
torch::Tensor attention_signature_topk(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor signatures,
                                       int64_t top_k, int64_t sink, int64_t recent, int64_t bits, int64_t seed);

}  // namespace hashmem::torch_ops
