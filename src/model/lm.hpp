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
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"
#include "model/run_files.hpp"

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

// The Engram memory: token ids → compressed ids → row ids per Engram block → a table of the tiered store, with
// sparse Adam on the rows and a per-row access count (the profile the SSD tier's static hot set comes from).
class EngramMemory {
 public:
  // Compression: `lookup[id]` for every tokenizer id (the compression file), or identity when `ablate` has
  // "compression". The config of the table follows from `c` (one tensor per Engram block).
  EngramMemory(const Config& c, std::vector<std::int64_t> lookup, std::int64_t compressed_vocab,
               std::string compression_sha256);
  // The Engram config (for create_table and for checking an opened table against it).
  const engram::Config& engram_config() const { return layout_.config; }
  void create(const std::string& path, std::uint64_t seed, float stddev);
  // Opens `path`; throws Error when its Engram constants differ from this memory's config.
  void open(const std::string& path, const store::OpenOptions& options);
  store::Table& table() { return *table_; }
  std::int64_t width() const { return width_; }
  std::int64_t columns() const { return layout_.config.columns(); }
  std::size_t tensors() const { return layout_.layers.size(); }

  // Row ids of ids [B, T] for each table tensor: rows[tensor][(b·T + t)·columns + column]. Pad history.
  std::vector<std::vector<std::int64_t>> row_ids(const torch::Tensor& ids) const;
  // Counts the rows into the access profile.
  void count(const std::vector<std::vector<std::int64_t>>& rows);
  // Starts reading the rows of every tensor.
  std::vector<store::Ticket> prefetch(const std::vector<std::vector<std::int64_t>>& rows);
  // The rows of one ticket as [B, T, width] (float32).
  torch::Tensor gather(store::Ticket& ticket, std::int64_t batch, std::int64_t seq);
  // One sparse Adam step on the rows with the gradients of the gathered tensors (undefined grads skipped).
  void update(const std::vector<std::vector<std::int64_t>>& rows, const std::vector<torch::Tensor>& gathered,
              float lr, std::int64_t adam_step);

  // Compressed ids of token ids (the lookup, or the ids themselves under the compression ablation).
  std::vector<std::int64_t> compress(const std::int64_t* ids, std::size_t n) const;

  // The access profile as safetensors ("counts.<layer id>", U32 [rows]) and back.
  void write_profile(const std::string& path) const;
  void read_profile(const std::string& path);
  // The hottest rows per tensor, hottest first, `total` in all (ranked across tensors).
  std::vector<std::vector<std::int64_t>> hot_rows(std::int64_t total) const;

  const engram::Layout& layout() const { return layout_; }

 private:
  engram::Layout layout_;
  std::vector<std::int64_t> lookup_;
  bool identity_ = false;
  std::string compression_sha256_;
  std::int64_t width_ = 0, row_dim_ = 0;
  std::unique_ptr<store::Table> table_;
  std::vector<std::vector<std::uint32_t>> counts_;  // per tensor, per row
};

// The tokenizer compression file at `path` (parse_compression, model/run_files.hpp).
CompressionFile read_compression(const std::string& path);

// Values per token an Engram block reads: columns · row_dim (0 without Engram).
inline std::int64_t engram_width(const Config& c) {
  return c.engram ? (c.engram_max_ngram - 1) * c.engram_heads * c.engram_row_dim : 0;
}

// True when generation can decode one token at a time from a KV cache (exact attention); the hashed kinds
// recompute their window for every token.
inline bool decodes_with_cache(const Config& c) { return c.attention == "exact" || c.attention == "torch"; }

// Builds the memory a config needs (nullptr without Engram): the compression from `compression_path` unless
// ablated. REQUIRES: validate(c) passed.
std::unique_ptr<EngramMemory> make_memory(const Config& c, std::int64_t vocab, const std::string& compression_path);

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
