// hashmem bench gather --tier cluster: Engram rows of DeepSeek-V4.1's format (264 B fp8 rows, both layers) served
// from a Redis Cluster the run starts itself, against the engine's own ceiling measured on the same cluster in the
// same run (docs/cluster.md).
//
// For each master count M and round-trip delay: (1) row throughput — a stream of 48-row gathers (24 rows of each
// layer: one token), `ahead` of them in flight, through the cluster tier with no DRAM cache, against
// `redis-benchmark --cluster -t get -d 264 -P 48` (pipelined GETs of the same value size) on the same cluster;
// (2) latency — one 48-row gather at a time, p50/p99, against redis-benchmark with one pipeline of 48 per node;
// (3) the decode loop of the serving issue (B requests of held-out text, model step S, prefetch a step ahead, with
// step-end and layered gathers) through the cluster tier against the same loop with the table in DRAM, every row
// checked against the DRAM table. Anchor and ours alternate over `rounds`; the best of each is kept.
//
// Delay: the nodes announce the ports of a DelayProxy (delay_proxy.hpp) in front of them, so both clients cross it;
// rtt 0 talks to the nodes directly. The kernel here lacks netem (see delay_proxy.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::bench {

struct ClusterGatherOptions {
  std::string workdir = "build/bench-cluster";
  std::string tokenizer = "build/data/deepseek-v3/tokenizer.json";
  std::string valid = "build/data/corpus/valid.txt";
  std::string preset = "deepseek-v4.1";
  double scale = 384;                        // 768 M rows / 384 = 2 M rows × 264 B = 528 MB on the cluster
  std::vector<int> masters = {1, 3, 6};
  int port = 32000;                          // the clusters take the first free ports from here
  std::vector<double> rtt_ms = {0, 0.1, 1};  // added round-trip delay (0: straight to the nodes)
  double seconds = 2;                        // per throughput figure
  int rounds = 2;                            // anchor/ours alternations
  int ahead = 128;                           // 48-row gathers in flight in the throughput figure
  int queue_depth = 2048;                    // rows per pipelined batch of the cluster tier
  int io_threads = 2;                        // the cluster tier's I/O threads
  std::vector<int> clients = {50, 200};      // redis-benchmark connections (-c) in its throughput figure: best kept
  bool pin = true;                           // clients on half the CPUs, nodes and proxies on the other half
  std::vector<int> client_cpus, cluster_cpus;  // set by the run when pinning
  std::int64_t batch = 8, steps = 100;       // decode loop: B, steps
  double step_ms = 20;                       // S
  int model_layers = 43;
  std::string redis_server = "redis-server", redis_benchmark = "redis-benchmark";
  bool quick = false, json = false, keep_cluster = false;
};

// The options of --tier cluster, added to `bench gather` in their own group.
void add_cluster_gather_options(CLI::App* gather, ClusterGatherOptions& o);

// REQUIRES: redis-server and redis-benchmark, the tokenizer and text. Throws Error naming what is missing or
// failed; returns the exit status (non-zero if a row differed from the DRAM table's).
int run_cluster_gather_bench(ClusterGatherOptions o);

}  // namespace hashmem::bench
