// The Engram-shaped text workload of `hashmem bench store` / `bench gather`: real text → SentencePiece ids →
// compressed ids → n-gram hashes → table row ids, the row-frequency profile, hit-ratio curves, and tokens/s
// through the tiered store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hashmem/store.hpp"

namespace hashmem::bench {

struct StoreBenchOptions {
  std::string workdir = "build/bench-store";
  std::string corpus = "build/data/corpus";     // train.txt, valid.txt, spm.model (hashmem data prepare)
  std::string python = HASHMEM_SYSTEM_PYTHON;   // for the PNG plots (matplotlib); skipped if missing
  double seconds = 3.0;                          // per measured figure
  int rounds = 5;                                // SSD figure: alternated rounds of raw and ours
  int queue_depth = 64;                          // SSD figure: the tier's queue depth (raw io_uring: 64)
  std::uint64_t big_table_bytes = 9ull << 30;    // the text-workload table (>= 8 GiB)
  std::int64_t big_dim = 64;                     // f32 values per row (256 B rows)
  double budget_fraction = 0.25;                 // DRAM budget / table bytes
  std::string policy = "s3fifo";
  double static_fraction = 0.9;
  std::int64_t step_tokens = 2048;               // tokens per prefetch/gather step
  std::int64_t max_train_tokens = 4'000'000;     // cap on the profile stream
  double model_tokens_per_s = 20000;             // compute stand-in: a model step takes step_tokens / this
  std::vector<std::string> parts = {"dram", "ssd", "text"};
  bool keep = false, json = false;
};

// Compressed token ids of the corpus' train and valid text.
struct Workload {
  std::int64_t compressed_vocab = 0;
  std::vector<std::int64_t> train, valid;  // compressed ids, documents concatenated
  std::string source;                      // description
};

Workload load_text_workload(const StoreBenchOptions& o);
// One text file tokenised into Workload::valid (the corpus' tokenizer and compression).
Workload load_text_file_workload(const StoreBenchOptions& o, const std::string& text_file);
// Row ids of every token (columns of the table's first layer, row = hash + offset), [tokens × columns].
std::vector<std::int64_t> row_stream(const store::TableInfo& info, const std::vector<std::int64_t>& ids);
nlohmann::ordered_json run_text_workload(const StoreBenchOptions& o, const Workload& w, const std::string& table,
                                         const store::TableInfo& info);
int run_store_bench(const StoreBenchOptions& o);

}  // namespace hashmem::bench
