// hashmem/engram_layer.hpp — the Engram layer (DeepSeek demo formulas, ../shared/SPEC.md §3) as plain C++
// kernels: forward and backward for every input and weight. No libtorch; projections go through BLAS.
//
// For token n (of N = batch·seq) with memory row e[n] (width E = the concatenated head rows) and hidden state
// h[n, g] for each of the G = hc_mult branches (width H):
//   key_g   = W_k[g]·e + b_k[g]
//   s       = Σ(RMS(key_g; norm1[g]) ⊙ RMS(h_g; norm2[g])) / √H,  eps = float32 epsilon
//   gate_g  = sigmoid(sign(s)·√max(|s|, 1e-6))
//   value_g = gate_g · (W_v·e + b_v)                                  (one W_v shared by the branches)
//   out     = value + SiLU(conv(RMS(value_g; conv_norm[g], eps 1e-5)))  (causal depthwise conv over time,
//             kernel K, dilation d, weight[:, K−1] multiplies x[t]; G·H channels)
// The V4.1 variant has no biases and no conv (out = value): LayerDims::bias / conv switch them off.
// LayerDims::gate = false is the paper's "no gating" ablation: gate_g = 1, and key_w, key_b, norm1, norm2 are
// absent (empty / null); the cache's key, rk, rh and dot stay empty.
//
// Layout (row-major): h, out [B, T, G, H]; e [B, T, E]; key_w [G, H, E]; key_b, norm1, norm2, conv_norm [G, H];
// value_w [H, E]; value_b [H]; conv_w [G·H, K].
// Threads: functions are reentrant; they use up to `threads` threads (0 = one per core) and BLAS.
// Errors: mismatched weight sizes throw hashmem::Error naming the weight.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::engram {

struct LayerDims {
  std::int64_t batch = 1, seq = 1, hc_mult = 1, hidden = 1, engram_dim = 1;
  std::int64_t kernel = 4, dilation = 1;
  bool bias = true;  // key_b, value_b
  bool conv = true;  // conv_norm, conv_w and the ShortConv branch
  bool gate = true;  // key_w, key_b, norm1, norm2 and the gate (false: gate = 1)
  std::int64_t tokens() const { return batch * seq; }
};

template <class T>
struct LayerWeights {
  std::vector<T> key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w;
};

// The same weights as pointers into someone else's memory (e.g. torch tensors), so callers need not copy them.
// Absent weights (no bias / no conv) may be null. The caller checks the sizes.
template <class T>
struct LayerWeightsView {
  const T *key_w, *key_b, *value_w, *value_b, *norm1, *norm2, *conv_norm, *conv_w;
};

// Everything the backward pass reuses from the forward pass.
template <class T>
struct LayerCache {
  std::vector<T> key;    // [N, G·H] before normalisation
  std::vector<T> proj;   // [N, H] W_v·e + b_v
  std::vector<T> rk, rh; // [N, G] inverse RMS of key and h
  std::vector<T> dot;    // [N, G] the score before the signed square root
  std::vector<T> gate;   // [N, G]
  std::vector<T> rv;     // [N, G] inverse RMS of value (conv)
  std::vector<T> y;      // [N, G·H] conv output before SiLU
};

// Throws Error naming the first weight whose size does not match `dims` (or a bad dim).
template <class T>
void check_layer(const LayerDims& dims, const LayerWeights<T>& w);

// out = layer(h, e). `cache` may be null when no backward follows.
template <class T>
void layer_forward(const LayerDims& dims, const LayerWeights<T>& w, const T* h, const T* e, T* out,
                   LayerCache<T>* cache, int threads = 0);

// The same on weight views (no size checks, no copies).
template <class T>
void layer_forward(const LayerDims& dims, const LayerWeightsView<T>& w, const T* h, const T* e, T* out,
                   LayerCache<T>* cache, int threads = 0);
template <class T>
void layer_backward(const LayerDims& dims, const LayerWeightsView<T>& w, const T* h, const T* e,
                    const LayerCache<T>& cache, const T* grad_out, T* grad_h, T* grad_e, LayerWeights<T>* grad_w,
                    int threads = 0);

// Gradients of sum(grad_out ⊙ out) with respect to h, e and every weight (grad_w is resized and overwritten;
// grad_h / grad_e may be null). REQUIRES: cache from layer_forward on the same inputs.
template <class T>
void layer_backward(const LayerDims& dims, const LayerWeights<T>& w, const T* h, const T* e, const LayerCache<T>& cache,
                    const T* grad_out, T* grad_h, T* grad_e, LayerWeights<T>* grad_w, int threads = 0);

// A case in the format of ../shared/reference/engram_layer_ref.py: dims, inputs, weights, expected.output.
struct LayerCase {
  LayerDims dims;
  std::vector<double> hidden, embeddings, expected;
  LayerWeights<double> weights;
};
LayerCase load_layer_case(const std::string& path);  // throws Error naming the file and the bad field

}  // namespace hashmem::engram
