// The tiny LM's torch modules and its Engram memory (internal to src/model/; include/hashmem/model.hpp is the
// public side). Includes torch headers: only the model's translation units include this.
//
// LM::forward runs the blocks in order and asks `memory(block)` for the Engram rows of a block just before that
// block runs, so a caller can prefetch the rows of every Engram block first and gather each one late (the
// reads overlap the blocks before it). With a KVCache the same forward serves prefill and one-token decode:
// positions continue from cache->length.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hashmem/engram.hpp"
#include "hashmem/engram_memory.hpp"
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"

namespace hashmem::model {

struct RMSNormImpl : torch::nn::Module {
  torch::Tensor weight;
  explicit RMSNormImpl(std::int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(RMSNorm);

// Decode state of one block: keys/values [B, heads, len, head_dim] (RoPE applied) and, for an Engram block, the
// last (kernel−1)·dilation + 1 inputs of the Engram layer (its causal conv looks that far back).
struct BlockCache {
  torch::Tensor k, v;
  torch::Tensor engram_h, engram_e;
};
struct KVCache {
  std::vector<BlockCache> blocks;
  std::int64_t length = 0;  // positions already in the cache
};

struct BlockImpl : torch::nn::Module {
  BlockImpl(const Config& c, std::int64_t index, std::int64_t engram_width);
  // x [B, T, D]; e [B, T, E] or undefined (no memory: the block skips its Engram layer); ids [B, T] (the tokens,
  // for bucket attention by token); cos/sin [T, hd/2] for the positions of x. With a cache, x holds the positions
  // after cache->k's (exact and torch attention only: the hashed kinds attend within one window).
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& e, const torch::Tensor& ids, const torch::Tensor& cos,
                        const torch::Tensor& sin, BlockCache* cache);
  // The attention input projections of x (for captured Q/K/V): q, k, v [B, heads, T, hd], RoPE applied.
  std::vector<torch::Tensor> qkv_of(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

  std::int64_t heads, dilation, kernel, index;
  bool has_engram = false;
  Config config;  // attention kind and its parameters
  RMSNorm n1{nullptr}, n2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, w1{nullptr}, w2{nullptr}, w3{nullptr};
  // The Engram layer's weights (G = 1 branch); undefined when ablated (gate: key_w/key_b/norm1/norm2; conv:
  // conv_norm/conv_w) — the fused op takes empty tensors for absent weights.
  torch::Tensor key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w;
  torch::Tensor bucket_mix;  // mixed attention: a learned weight per bucket head [heads − exact_heads]

 private:
  torch::Tensor engram(const torch::Tensor& x, const torch::Tensor& e, BlockCache* cache);
  // q [B, heads, T, hd], k, v [B, heads, past + T, hd] → [B, heads, T, hd].
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& ids);
};
TORCH_MODULE(Block);

using MemoryFn = std::function<torch::Tensor(std::size_t block)>;

struct LMImpl : torch::nn::Module {
  LMImpl(const Config& c, std::int64_t vocab, std::int64_t engram_width);
  // ids [B, T] → logits [B, T, vocab]. REQUIRES: (cache ? cache->length : 0) + T <= max_positions.
  torch::Tensor forward(const torch::Tensor& ids, const MemoryFn& memory, KVCache* cache = nullptr);
  // cos/sin of positions [begin, begin + n).
  std::pair<torch::Tensor, torch::Tensor> rope_tables(std::int64_t begin, std::int64_t n) const;
  KVCache new_cache() const;

  std::int64_t vocab, max_positions;
  torch::nn::Embedding emb{nullptr};
  std::vector<Block> blocks;
  RMSNorm norm{nullptr};
  torch::Tensor inv_freq;  // [hd/2]
};
TORCH_MODULE(LM);

// Parameters that get weight decay: matrices (dim >= 2), embeddings included; norms and biases do not.
bool decays(const std::string& name, const torch::Tensor& p);
// Multiply-adds ×2 ×3 (forward + backward) of the matrices per token, plus attention scores and mixing at the full
// context: the usual 6·N + 12·layers·context·dim/2 (causal) estimate. Engram's lookups add no FLOPs.
double train_flops_per_token(const LM& model, const Config& c);

// Torch glue of the Engram memory (include/hashmem/engram_memory.hpp, the one path tokens → rows → reads):
// tensor `tensor` of a lookup as float32 [batch, seq, width].
torch::Tensor gather_tensor(engram::Memory& memory, engram::Lookup& lookup, std::size_t tensor);
// One sparse Adam step on the lookup's rows with the gradients of its gathered tensors (undefined ones skipped).
void update_memory(engram::Memory& memory, const engram::Lookup& lookup, const std::vector<torch::Tensor>& gathered,
                   float lr, std::int64_t adam_step);

// Values per token an Engram block reads: columns · row_dim (0 without Engram).
inline std::int64_t engram_width(const Config& c) {
  return c.engram ? (c.engram_max_ngram - 1) * c.engram_heads * c.engram_row_dim : 0;
}

// True when generation can decode one token at a time from a KV cache (exact attention); the hashed kinds
// recompute their window for every token.
inline bool decodes_with_cache(const Config& c) { return c.attention == "exact" || c.attention == "torch"; }

// Builds the memory a config needs (nullptr without Engram): one table tensor per Engram block, the compression
// from `compression_path` (what compression_json wrote) unless ablated. REQUIRES: validate(c) passed.
std::unique_ptr<engram::Memory> make_memory(const Config& c, std::int64_t vocab, const std::string& compression_path);

// Token stream of a token-id file: documents concatenated, `eos` after each.
std::vector<std::int64_t> token_stream(const std::string& path, std::int64_t eos, std::int64_t* vocab);

// Dense weights ↔ safetensors (names are the module's parameter names). load_weights throws Error naming the
// file and tensor when one is missing, has another shape, or the file is damaged.
void save_weights(torch::nn::Module& module, const std::string& path);
void load_weights(torch::nn::Module& module, const std::string& path);

// The checkpoint directory of a run: checkpoint/, or checkpoint.old/ when a crash came between the two renames
// that swap a new checkpoint in. Throws Error naming the run when it has none.
std::string checkpoint_dir(const std::string& run);

// Reads run/config.json. Throws Error naming the run when it is missing or invalid.
Config read_run_config(const std::string& run);

inline constexpr std::int64_t kEos = 2;  // SentencePiece </s> (data::tokenizer_trainer_flags): between documents

}  // namespace hashmem::model
