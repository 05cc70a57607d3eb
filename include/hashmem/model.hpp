// hashmem/model.hpp — the tiny decoder-only LM (libtorch) trained with or without Engram on the real-text
// corpus. This header has no torch types: the CLI and tests include it; only src/model/ sees libtorch.
//
// Model: tied token embeddings, `layers` pre-norm blocks (RMSNorm → causal multi-head attention with RoPE →
// RMSNorm → SwiGLU MLP), final RMSNorm. With Engram on, the blocks listed in `engram_layers` first add
// EngramLayer(h, e) to the hidden state (G = 1 branch), where e is the concatenation of the rows looked up from a
// hashmem table (tiered store) for the token's 2..max_ngram-grams of compressed ids (docs/engram-layer.md).
// Training: AdamW on dense weights; sparse Adam (5× the dense rate, no weight decay) on the table's rows.
// Threads: train() uses `threads` threads (torch and our kernels). Errors: hashmem::Error naming the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::model {

struct TrainOptions {
  std::string corpus = "build/data/corpus";  // train.ids, valid.ids, spm.model (hashmem data prepare)
  std::string out;                           // run directory: metrics.csv, summary.json, the Engram table
  std::string compression;                   // the tokenizer compression (JSON of `hashmem engram compress --out`)
  bool engram = true;
  // model
  std::int64_t dim = 256, layers = 4, heads = 4, context = 128;
  std::vector<std::int64_t> engram_layers = {1};
  std::int64_t engram_row_dim = 16;          // values per table row (one head's slice)
  std::int64_t engram_heads = 8, engram_max_ngram = 3, engram_vocab_per_order = 40000;
  // training
  std::int64_t tokens = 2'000'000;           // training tokens (batch · context per step)
  std::int64_t batch = 16;
  double lr = 2e-3, engram_lr_multiplier = 5.0, weight_decay = 0.1;
  std::int64_t eval_every = 50;              // steps
  std::int64_t eval_windows = 64;            // validation windows of `context` tokens
  std::uint64_t seed = 0;
  int threads = 2;
  bool progress = true;
};

struct TrainResult {
  double val_loss = 0;                 // final validation loss (nats per token)
  double val_loss_engram_off = -1;     // the Engram model with its memory switched off (−1 without Engram)
  double first_train_loss = 0, last_train_loss = 0;
  std::int64_t steps = 0, tokens = 0;
  std::int64_t dense_parameters = 0, table_parameters = 0;
  double train_flops_per_token = 0;    // 6 · dense parameters + attention
  double tokens_per_s = 0;
  double seconds = 0;
};

// Trains one model and writes `out`/metrics.csv (step, tokens, train loss, val loss, tokens/s) and
// `out`/summary.json. Throws Error when the corpus is missing or options are invalid.
TrainResult train(const TrainOptions& options);

}  // namespace hashmem::model
