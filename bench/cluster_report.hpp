// The figures of `hashmem bench gather --tier cluster` (cluster_gather.hpp) and their output: CSV on stdout (or
// JSON with --json), and cluster-gather.csv / .json in the workdir.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster_gather.hpp"
#include "hashmem/engram_memory.hpp"
#include "hashmem/store.hpp"
#include "offload_loop.hpp"

namespace hashmem::bench {

struct GatherRate {
  double rows_per_s = 0;                // rows (GETs) per second
  double p50_seconds = 0, p99_seconds = 0;  // per 48-row gather (redis-benchmark: per pipeline of 48)
  double cpu_seconds_per_row = 0;           // the client's CPU (user + system) per row
};

struct GatherDecodeFigure {
  Schedule schedule = Schedule::step_end;
  double tokens_per_s = 0, dram_tokens_per_s = 0;
  double p99_step_seconds = 0, dram_p99_step_seconds = 0;
  double lookup_seconds_per_step = 0, gather_seconds_per_step = 0;  // ours: hashing + prefetch; gathers (wait, decode)
  double dram_stall_seconds_per_step = 0;                           // the anchor's lookups + gathers
  std::uint64_t verified_rows = 0, mismatched_rows = 0;
};

struct GatherPoint {
  int masters = 0;
  double rtt_ms = 0;
  double push_seconds = 0;
  GatherRate anchor, ours;                  // throughput: redis-benchmark -c clients -P 48; ahead gathers in flight
  GatherRate anchor_latency, ours_latency;  // one pipeline of 48 per node; one 48-row gather at a time
  std::vector<GatherDecodeFigure> decode;         // step-end, layered
};

// The table and the decode loop's inputs, shared by every point; the table file is removed with it.
struct GatherInputs {
  std::string path;
  engram::Layout layout;
  engram::Compression compression;
  std::unique_ptr<engram::Memory> dram;     // the whole table in DRAM: the decode anchor
  store::Table* reference = nullptr;        // the DRAM table, every cluster row is checked against it
  std::vector<std::vector<std::int64_t>> requests;
  std::int64_t keyspace = 0;                // redis-benchmark's -r
  GatherInputs() = default;
  GatherInputs(const GatherInputs&) = delete;
  GatherInputs& operator=(const GatherInputs&) = delete;
  ~GatherInputs() { close(); }
  void close();                             // drops the DRAM copy and removes the file
};

struct GatherReport {
  const ClusterGatherOptions* options = nullptr;
  store::TableInfo table;
  double create_seconds = 0, fill_seconds = 0;
  std::vector<GatherPoint> points;
};

// Prints and writes the figures; returns 1 if any decoded row differed from the DRAM table's, else 0.
int write_gather_report(const GatherReport& report);

}  // namespace hashmem::bench
