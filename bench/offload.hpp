// hashmem bench offload: serving DeepSeek-V4.1's Engram rows from SSD behind a DRAM cache, on a real table.
//
// The table: the deepseek-v4.1 preset's two layers (1 and 14; 24 rows of 256 fp8 e4m3 values + 8 ue8m0 scales =
// 264 B per token per layer), every table `scale` times smaller (engram::scaled: primes just above size/scale, so
// rows stay uniform), written with store::create_table under `workdir` and deleted at the end (also on an error,
// SIGINT, SIGTERM or SIGHUP). The access profile (the static hot set) comes from the corpus' training text and the
// requests from its held-out text, through DeepSeek-V3's tokenizer (cache_trace.hpp's path).
//
// Measured per DRAM budget (a fraction of the table): the prefill of one prompt and decode loops of B requests with
// a model step of S (offload_loop.hpp), against the same loops on a DRAM-tier anchor table of the same row format
// hashed into a smaller scaled size that fits in memory, in the same run. Output: CSV on stdout (or --json), the
// CSV/JSON files and a PNG (bench/plot_offload.py, if matplotlib is there) under `workdir`. docs/offload.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::bench {

struct OffloadOptions {
  std::string workdir = "build/bench-offload";
  std::string tokenizer = "build/data/deepseek-v3/tokenizer.json";
  std::string train = "build/data/corpus/train.txt", valid = "build/data/corpus/valid.txt";
  std::string preset = "deepseek-v4.1";
  double scale = 5.8;            // the table: 768 M rows / 5.8 = 132 M rows × 264 B = 32.6 GiB
  double anchor_scale = 64;      // the DRAM anchor: 12 M rows = 3.2 GB
  std::string init = "normal";   // normal | zeros (zeros: a virtual disk may serve zero blocks specially)
  std::vector<double> budgets = {0.02, 0.05, 0.10, 0.25};
  std::vector<std::int64_t> batches = {1, 8, 32};
  std::vector<double> step_ms = {5, 20, 50};
  std::vector<std::string> schedules = {"layered", "step-end"};
  std::int64_t steps = 150;      // decode steps per (schedule, S, B)
  int model_layers = 43;         // DeepSeek-V4-Flash: 43 layers (NVIDIA NeMo AutoModel's model page)
  std::int64_t prefill_tokens = 4096;
  std::int64_t max_train_tokens = 0;  // 0 = all of train
  std::string policy = "s3fifo";
  double static_fraction = 0.9;
  std::string hot_set = "global";  // global | lead: which rows the static hot set holds (offload.cpp, hot_rows)
  int queue_depth = 64;
  std::uint64_t staging_bytes = 256ull << 20;
  std::string python = HASHMEM_SYSTEM_PYTHON;
  bool quick = false, verify = false, keep = false, reuse = false, json = false;
};

// REQUIRES: the tokenizer and text files exist; disk room for the table (+ the anchor). Throws Error naming the
// option or file at fault; returns the exit status (non-zero if a verified row differed).
int run_offload_bench(OffloadOptions o);

}  // namespace hashmem::bench
