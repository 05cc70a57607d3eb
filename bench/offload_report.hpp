// What `hashmem bench offload` measured, and its output: CSV on stdout (decode rows, then prefill rows), or JSON
// with --json; offload.json, offload-decode.csv, offload-prefill.csv and (matplotlib permitting) offload.png under
// the workdir. Every SSD-tier figure sits beside the DRAM anchor's figure for the same requests.
// Threads: one. Ownership: plain values (the options are borrowed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hashmem/store.hpp"
#include "offload.hpp"
#include "offload_loop.hpp"

namespace hashmem::bench {

struct ProfileFigures {
  std::int64_t tokens = 0, accesses = 0, distinct_rows = 0;
  double seconds = 0;
};

struct DecodeKey {
  std::string schedule;
  double step_ms = 0;
  std::int64_t batch = 0;
};

// One tier's runs: the prefill, then every decode configuration (keys[i] describes decode[i]).
struct TierRun {
  double budget = 0;  // fraction of the table in DRAM (SSD tier)
  double open_seconds = 0;
  bool direct_io = true;
  PrefillResult prefill;
  std::vector<DecodeKey> keys;
  std::vector<DecodeResult> decode;
};

struct Report {
  const OffloadOptions* options = nullptr;
  store::TableInfo table, anchor;
  double create_seconds = 0, anchor_create_seconds = 0;
  ProfileFigures profile;
  std::int64_t held_out_documents = 0;
  std::vector<std::pair<std::uint64_t, double>> dram_row_ns;  // (buffer bytes, ns per random row)
  std::vector<BatchReadTimes> raw_reads;                        // batches of reads on the caller's thread
  TierRun dram;
  std::vector<TierRun> ssd;
};

// Prints and writes the report; returns 0, or 1 if a verified row differed from the DRAM tier's.
int write_report(const Report& report);

}  // namespace hashmem::bench
