// hashmem/model.hpp — the tiny decoder-only LM (libtorch) trained with or without Engram on the real-text
// corpus, checkpointed and resumed, and served with its Engram table offloaded to the SSD tier.
// This header has no torch types: the CLI and tests include it; only src/model/ sees libtorch.
//
// Model: tied token embeddings, `layers` pre-norm blocks (RMSNorm → causal multi-head attention with RoPE →
// RMSNorm → SwiGLU MLP), final RMSNorm. With Engram on, the blocks listed in `engram_layers` first add
// EngramLayer(h, e) to the hidden state (G = 1 branch, the fused kernels of engram_layer.hpp), where e is the
// concatenation of the table rows of the token's 2..max_ngram-grams of compressed ids: tokens → compressed ids
// → row ids (engram.hpp) → tiered store (store.hpp) → layer → model. One table tensor per Engram block.
// Training: AdamW on dense weights (weight decay on matrices only); sparse Adam on the table rows (5× the dense
// rate, no weight decay, SPEC §3), the rows of step t+1 prefetched while step t computes.
//
// A run directory holds config.json (the resolved Config), metrics.csv, summary.json and checkpoint/ (the latest
// complete checkpoint: model.safetensors, optimizer.safetensors, engram.safetensors + .adam, row-profile.
// safetensors, state.json). A checkpoint is written as checkpoint.new/ and swapped in by renames, so a crash
// leaves the previous one (checkpoint/ or, between the two renames, checkpoint.old/) complete.
//
// Units: tokens are SentencePiece ids; FLOPs are per token; bytes are bytes.
// Threads: train() / generate() use `threads` threads (torch and our kernels); one call per process at a time.
// Errors: hashmem::Error naming the file, key or argument at fault.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::model {

// Everything that defines a run. JSON keys are the field names; `hashmem train --config F` overrides a preset.
struct Config {
  // ---- model ----
  std::int64_t dim = 128, layers = 4, heads = 4;
  std::int64_t context = 128;          // tokens per training window, and the longest sequence the model sees
  std::int64_t ffn = 0;                // SwiGLU width; 0 = 8·dim/3 rounded up to 64
  bool engram = true;
  std::vector<std::int64_t> engram_layers = {1};   // blocks with an Engram layer (0-based)
  std::int64_t engram_row_dim = 16;    // values per table row (one head's slice)
  std::int64_t engram_heads = 8, engram_max_ngram = 3;
  std::int64_t engram_vocab_per_order = 100000;    // rows per head start above this (next unused prime)
  std::int64_t engram_kernel = 4;      // ShortConv kernel (dilation = max_ngram)
  double engram_init_std = 0.02;       // table rows start N(0, std²), like the token embeddings
  // Ablations of the paper: "gate" (gate = 1: the memory is always added), "compression" (raw tokenizer ids
  // instead of compressed ids), "conv" (no ShortConv).
  std::vector<std::string> ablate;
  // Attention (include/hashmem/attention.hpp): "exact" (our tiled kernel), "torch" (the same softmax from plain
  // libtorch ops, the reference), "lsh" (Reformer, shared QK), "bucket" (hash-bucket means), "mixed" (the first
  // exact_heads heads exact, the others bucket heads, each bucket head scaled by a learned weight).
  std::string attention = "exact";
  std::int64_t lsh_rounds = 2, lsh_chunk = 32;
  std::string bucket_key = "lsh";      // "lsh" (sign bits of q/k, hashed with xxh3) or "token" (the token id)
  std::int64_t bucket_sign_bits = 8, bucket_rounds = 2;
  std::int64_t exact_heads = 0;        // mixed: heads kept exact; 0 = half
  // ---- training ----
  std::int64_t tokens = 1'228'800;     // training tokens: steps = tokens / (batch · context)
  std::int64_t batch = 16;             // windows per step
  double lr = 3e-3;                    // peak dense learning rate (linear warm-up, cosine to min_lr_fraction·lr)
  double warmup_fraction = 0.05, min_lr_fraction = 0.1;
  // Table rows learn at this multiple of the dense rate. The paper's 5× is for batches of millions of tokens;
  // in a run of a million tokens most rows are touched a handful of times and need a far larger step
  // (docs/model.md has the sweep: at 400 k tokens 5× gave 6.37, 100× 6.11, the baseline 6.56).
  double engram_lr_multiplier = 100.0;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  std::int64_t eval_every = 50;        // steps between validation losses (on eval_windows windows)
  std::int64_t eval_windows = 64;
  std::int64_t final_eval_windows = 0; // the final validation loss: evenly spaced windows; 0 = every window
  std::int64_t checkpoint_every = 0;   // steps between checkpoints; 0 = at the end only
  std::uint64_t seed = 0;              // initialisation and batches
  int threads = 2;

  bool has_ablation(const std::string& name) const;
  std::int64_t steps() const { return tokens / (batch * context); }
  std::int64_t exact_head_count() const { return exact_heads > 0 ? exact_heads : heads / 2; }
  std::int64_t ffn_width() const { return ffn > 0 ? ffn : (8 * dim / 3 + 63) / 64 * 64; }
};

// "tiny" (the demo: ~4 minutes per arm on 2 cores) and "quick" (CI smoke test and tests: seconds).
// Throws Error naming an unknown preset.
Config preset(const std::string& name);
const std::vector<std::string>& preset_names();

// Applies the keys of a JSON object (text) on top of `base`. Throws Error naming `source` and the unknown key or
// the key whose value has the wrong type.
Config config_from_json(const std::string& json_text, const Config& base, const std::string& source);
std::string config_to_json(const Config& config);  // every field, pretty-printed
// Throws Error naming the first invalid field (dims that do not split into heads, an Engram block outside the
// model, an unknown ablation, a budget smaller than one batch, a size past its upper bound (dim 2^20, layers 2^16,
// context, batch and ffn 2^24, engram_row_dim 2^16, engram_heads 4096, engram_max_ngram 64, engram_kernel 1024),
// ...).
void validate(const Config& config);

// ---- training ----

struct TrainOptions {
  Config config;
  std::string corpus = "build/data/corpus";  // train.ids, valid.ids (hashmem data prepare)
  std::string out;                           // the run directory
  std::string compression;                   // tokenizer compression JSON (hashmem engram compress --out);
                                             // needed with Engram unless ablate has "compression"
  bool resume = false;        // continue the run in `out` from its checkpoint (config from out/config.json)
  std::int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps of the schedule; 0 = all
  std::string dump_qkv;       // after training: write the Q/K/V of block 0 on validation text here (safetensors)
  bool progress = true;       // a progress line on stderr (when it is a terminal)
};

struct TrainResult {
  double val_loss = 0;                 // final validation loss (nats per token), final_eval_windows windows
  double val_loss_engram_off = -1;     // the Engram model with its memory switched off (−1 without Engram)
  double first_train_loss = 0, last_train_loss = 0;  // last: mean over the final tenth of the steps (>= 1)
  std::int64_t steps = 0, tokens = 0;  // done by the run so far (all its calls, resumed ones included)
  std::int64_t dense_parameters = 0, table_parameters = 0;
  double train_flops_per_token = 0;    // forward + backward: 6 · matrix parameters + attention scores
  double tokens_per_s = 0;             // the run's training throughput (evaluation and checkpoints excluded)
  double seconds = 0;                  // this call, evaluation and checkpoints included
  bool finished = false;               // the schedule is complete
};

// Trains (or resumes) one run; writes the run directory described above. Throws Error when the corpus is missing,
// the options are invalid, `out` already holds a run and resume is false, or a checkpoint is damaged.
TrainResult train(const TrainOptions& options);

// ---- generation ----

struct GenerateOptions {
  std::string run;                      // a run directory with a checkpoint
  std::vector<std::int64_t> prompt;     // token ids
  std::int64_t max_new_tokens = 64;
  std::int64_t top_k = 0;               // 0 = greedy
  double temperature = 1.0;
  std::uint64_t seed = 0;               // sampling
  std::int64_t stop_token = -1;         // stop after generating this id (e.g. end of document); −1 = never
  // Engram table: in DRAM when dram_budget is 0 or at least the table's size, else the SSD tier (io_uring,
  // O_DIRECT) behind a cache of dram_budget bytes: a static hot set from the training row profile plus S3-FIFO.
  std::uint64_t dram_budget = 0;
  bool engram_off = false;              // run the Engram model with its memory switched off
  bool no_cache = false;                // recompute the whole window for every token (tests the KV cache)
  int threads = 2;
};

struct GenerateResult {
  std::vector<std::int64_t> tokens;     // the generated ids (prompt excluded)
  double prefill_seconds = 0, decode_seconds = 0;
  double tokens_per_s = 0;              // generated tokens / decode time
  std::string tier = "none";            // "dram", "ssd" or "none" (no Engram)
  std::uint64_t table_bytes = 0, dram_budget = 0;
  double hit_ratio = 0;                 // rows served from DRAM (static set, cache, shared reads) / rows looked up
  std::uint64_t lookups = 0, reads = 0, late_rows = 0;
};

// Throws Error when the run has no checkpoint, a file is damaged, or a prompt id is outside the vocabulary.
GenerateResult generate(const GenerateOptions& options);

// ---- the training-step overhead of Engram, measured in one process ----

struct StepBenchResult {
  double baseline_ms = 0, engram_ms = 0;  // median milliseconds per training step (same batches)
  double ratio = 0;                       // engram_ms / baseline_ms
  double lookup_ms = 0;                   // of engram_ms: hashing + gathering the rows
  double update_ms = 0;                   // of engram_ms: sparse Adam on the rows
  std::int64_t steps = 0;
};
// Alternates rounds of `steps` training steps of the baseline and the Engram model of `config` (same data),
// after a warm-up. REQUIRES: config.engram; the corpus and compression as for train().
StepBenchResult bench_step(const TrainOptions& options, std::int64_t steps, int rounds);

}  // namespace hashmem::model
