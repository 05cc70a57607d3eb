// One (n, d) point of `hashmem bench attention` (attention.cpp has the command, its inputs and its output): every
// method timed, with its error, recall and memory, beside the anchors. The conventions are in attention.cpp's
// opening comment and docs/attention.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hashmem/attention.hpp"

namespace hashmem::bench {

struct AttentionBenchOptions {
  std::string n_list = "1024,4096,16384,65536";
  std::string d_list = "128";
  bool causal = false;
  std::string inputs = "random";
  std::string captured;
  std::string save_inputs;
  std::int64_t heads = 1;
  int threads = 1;
  int lsh_rounds = 4;
  std::int64_t lsh_chunk = 64;
  int bucket_rounds = 2;
  int bucket_sign_bits = 8;
  std::string top_k_list = "256,2048";
  std::int64_t sink = 4, recent = 64;
  std::int64_t samples = 64;        // query rows sampled for LSH's error and for recall
  std::int64_t naive_max_n = 2048;  // the O(n²) reference is timed up to this n
  std::string out = "build/bench-attention";
  std::string python = HASHMEM_SYSTEM_PYTHON;
  bool json = false;
};

// "1,2,3" -> {1, 2, 3}; throws Error naming `option` for anything but positive integers.
std::vector<std::int64_t> parse_list(const std::string& text, const char* option);

struct Memory {
  std::int64_t workspace_bytes = 0;
  std::int64_t rss_growth_bytes = -1;  // −1: the peak could not be reset
};

// One method's figures at one point (error and recall −1: not measured).
struct Row {
  explicit Row(std::string name) : method(std::move(name)) {}
  std::string method;
  double seconds = 0, gflops = 0, speedup = 0, error = -1, recall = -1;
  Memory memory;
  std::string note;
};

// Every method at one point: exact, the anchors (sgemm, naive), LSH, bucket, then exact decoding and signature
// top-k decoding at each --top-k. Row 0 is exact.
std::vector<Row> run_point(const AttentionBenchOptions& o, const attention::Inputs& in, bool causal);

}  // namespace hashmem::bench
