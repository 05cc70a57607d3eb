// hashmem/store.hpp — Engram tables larger than RAM: the table file format and the tiered store that serves
// rows from DRAM or from SSD behind a DRAM hot cache, fed by deterministic prefetch.
//
// File format: safetensors. One 2-D tensor per Engram layer, "layer.<id>" [rows, width], followed by one
// U64 tensor "__checksums__" = [xxh3(header JSON), xxh3 of every checksum block of every layer...]. The
// header is padded with spaces so the data starts at a 4 KiB boundary (O_DIRECT reads need it). The hash
// constants (Engram config, multipliers, primes, offsets, compression hash) are in "__metadata__". Row
// dtypes: f32, bf16, and fp8 e4m3 with one ue8m0 scale per 32 values (DeepSeek-V4.1's layout), stored
// interleaved per row as U8 [rows, dim + dim/32] so one read brings a whole row. See docs/store.md.
//
// Tiers: Tier::dram loads the whole table into memory (2 MiB pages); Tier::ssd reads rows with io_uring and
// O_DIRECT (no mmap, no page cache) into a bounded staging pool, behind a DRAM hot cache of `dram_budget`
// bytes: a static hot set (rows named by a frequency profile, loaded at open) plus a dynamic part run by a
// cache policy (LRU, S3-FIFO, W-TinyLFU). Both tiers give the same bits for the same ids.
//
// Threads: a Table may be used from many threads at once: gathers share the table; apply_rows and
// checkpoint take it exclusively. A Ticket belongs to the thread that gathers it.
// Ownership: Table owns its file descriptors, memory and I/O thread; destroying it waits for reads in flight.
// Errors: hashmem::Error naming the file or argument (malformed header, checksum damage, bad row id, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hashmem/engram.hpp"

namespace hashmem::store {

enum class DType { f32, bf16, fp8 };  // fp8 = e4m3 values + one ue8m0 scale byte per 32 values
DType parse_dtype(const std::string& name);  // "f32" | "bf16" | "fp8"
const char* dtype_name(DType dtype);
// Bytes of one stored row of `dim` values. REQUIRES: dim >= 1 (fp8: dim % 32 == 0).
std::size_t row_bytes(DType dtype, std::int64_t dim);

// Row codecs (the reference beside the fast paths; fp8 rounds to nearest even after choosing the power-of-
// two scale 2^ceil(log2(amax / 448)) per block of 32, so every value is representable without overflow).
void encode_row(DType dtype, const float* values, std::int64_t dim, std::uint8_t* row);
void decode_row(DType dtype, const std::uint8_t* row, std::int64_t dim, float* values);
std::uint16_t float_to_bf16(float value);  // round to nearest even; NaN stays NaN
float bf16_to_float(std::uint16_t bits);

struct TensorInfo {
  std::string name;           // "layer.<id>"
  std::int64_t layer_id = 0;
  std::int64_t rows = 0;
  std::uint64_t offset = 0;   // absolute file offset of row 0
  std::uint64_t bytes = 0;    // rows × row_bytes
};

struct TableInfo {
  std::string path;
  std::uint64_t file_bytes = 0;
  std::uint64_t header_bytes = 0;     // 8 + JSON length; data starts here (multiple of 4096)
  DType dtype = DType::f32;
  std::int64_t dim = 0;               // values per row
  std::size_t row_bytes = 0;
  std::uint64_t checksum_block = 0;   // bytes per checksummed block of a tensor
  std::uint64_t checksums_offset = 0; // absolute offset of the "__checksums__" tensor
  std::vector<TensorInfo> tensors;    // one per layer, in file order
  engram::Config config;              // the Engram config the rows belong to
  std::map<std::string, std::string> metadata;  // the raw "__metadata__"
  std::uint64_t data_bytes() const;   // sum of tensor bytes
  std::int64_t total_rows() const;
};

// Parses and checks the header of `path` (structure, offsets inside the file, header checksum).
// Throws Error naming the file and what is wrong (truncated, not safetensors, not a hashmem table, ...).
TableInfo read_info(const std::string& path);

enum class Init { zeros, normal };
struct CreateOptions {
  engram::Config config;          // layers, primes → rows per layer
  std::int64_t dim = 0;           // values per row (one head's slice)
  DType dtype = DType::f32;
  Init init = Init::normal;
  float stddev = 1.0f;            // Init::normal: N(0, stddev²), deterministic in (seed, layer, row)
  std::uint64_t seed = 0;
  std::uint64_t checksum_block = 1 << 20;
  std::string compression_sha256; // optional: SHA-256 of the tokenizer compression lookup
  int threads = 0;                // 0 = one per core
};
// Writes a new table atomically (temporary file, fsync, rename): a crash leaves the old file or none.
TableInfo create_table(const CreateOptions& options, const std::string& path);

// Recomputes every checksum. Returns the damaged parts ("header", "layer.14 block 3", ...); empty = intact.
std::vector<std::string> verify_table(const std::string& path, bool show_progress = false);

// ---- The tiered store ----

enum class Tier { dram, ssd, cluster };  // cluster: a table pushed to a Redis Cluster (hashmem/cluster.hpp)
Tier parse_tier(const std::string& name);
enum class Policy { lru, s3fifo, tinylfu };
Policy parse_policy(const std::string& name);  // "lru" | "s3fifo" | "tinylfu"
const char* policy_name(Policy policy);

struct OpenOptions {
  Tier tier = Tier::dram;
  bool writable = false;            // apply_rows / checkpoint allowed
  // Tier::ssd only:
  std::uint64_t dram_budget = 0;    // bytes of DRAM for cached rows (static + dynamic)
  Policy policy = Policy::s3fifo;
  std::vector<std::vector<std::int64_t>> hot_rows;  // per tensor, hottest first (a profile); may be empty
  double static_fraction = 0.5;     // share of the budget for the static hot set (if hot_rows are given)
  std::uint64_t staging_bytes = 64 << 20;  // bound on read buffers in flight
  int queue_depth = 64;             // io_uring reads in flight (cluster: rows per pipelined batch)
  // Tier::cluster only (the open's path is then ignored; the table is named "cluster:<name>"): the cluster's
  // "host:port[,host:port...]" and the name the table was pushed under. The cached tier's options above apply.
  std::string cluster, name;
  double cluster_retry_seconds = 15;  // how long a read waits for a failover (or reshard) before it fails
  int cluster_io_threads = 2;         // threads sending batches, each on its own connections: while one batch is
                                      // on the wire another is sent or decoded (2 reach the redis-benchmark ceiling)
  bool cluster_replica_reads = false; // prefetch reads spread over each slot's master and replicas (READONLY);
                                      // replicas lag writes: for tables that are served, not trained
};

struct Stats {
  std::uint64_t lookups = 0;         // rows named by prefetches (and gathers on the DRAM tier)
  // static_hits: served from the static hot set (on the DRAM tier: every row); cache_hits: the dynamic cache;
  // inflight_hits: a read already in flight for the same row was shared; misses: a read was issued.
  std::uint64_t static_hits = 0, cache_hits = 0, inflight_hits = 0, misses = 0;
  std::uint64_t reads = 0, bytes_read = 0, writes = 0, bytes_written = 0;
  std::uint64_t write_errors = 0;     // write-backs that failed while a gather admitted a row (the dirty row stayed
                                      // cached; the next checkpoint reports the error)
  std::uint64_t late_rows = 0;        // rows whose read was not done when gather wanted them
  double late_seconds = 0;            // time gather spent waiting for reads
  std::uint64_t max_queue_depth = 0;
  bool direct_io = true;              // false if the file system refused O_DIRECT (buffered reads instead)
  double hit_ratio() const;
};

class Table;

// A prefetch in flight: the rows it names are pinned (cached ones cannot be evicted, misses are being read)
// until gather() consumes it. Move-only; destroying an unconsumed ticket releases its pins.
class Ticket {
 public:
  Ticket();
  ~Ticket();
  Ticket(Ticket&&) noexcept;
  Ticket& operator=(Ticket&&) noexcept;
  std::size_t size() const;  // rows named
  struct State;

 private:
  friend class Table;
  std::unique_ptr<State> state_;
};

enum class Optimizer { sgd, adam };
// SGD: row -= lr·g. Adam (no weight decay): m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², row -= lr·m̂/(√v̂ + eps)
// with m̂ = m/(1−β1^step), v̂ = v/(1−β2^step); the per-row moments live in "<path>.adam" on the same tier.
struct UpdateOptions {
  Optimizer optimizer = Optimizer::sgd;
  float lr = 0.01f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  std::int64_t step = 1;  // Adam's step count (>= 1), for bias correction
};

class Table {
 public:
  static std::unique_ptr<Table> open(const std::string& path, const OpenOptions& options = {});
  ~Table();

  const TableInfo& info() const;
  const OpenOptions& options() const;

  // Starts reading rows[0..n) of tensor `tensor` (duplicates allowed). REQUIRES: 0 <= rows[i] < that tensor's
  // rows (else Error). gather() returns each row as of the gather call: updates applied between prefetch
  // and gather are seen (so a training loop that prefetches step t+1 before updating step t stays exact).
  Ticket prefetch(int tensor, const std::int64_t* rows, std::size_t n);
  // Decodes the ticket's rows into out[n × dim] (f32 or bf16), waiting for reads still in flight.
  void gather(Ticket& ticket, float* out);
  void gather(Ticket& ticket, std::uint16_t* out_bf16);
  // prefetch + gather.
  void gather(int tensor, const std::int64_t* rows, std::size_t n, float* out);

  // Training: the rows take one optimizer step (SGD or Adam) with their gradients, duplicates summed; dirty
  // rows are written back on eviction (SSD tier) and persisted by checkpoint(). REQUIRES: opened writable.
  void apply_rows(int tensor, const std::int64_t* rows, std::size_t n, const float* grads,
                  const UpdateOptions& options);
  // Makes the table at its path equal the current rows, atomically (temporary + fsync + rename); Adam's
  // moments file first, the same way.
  void checkpoint();
  // The same into another file: `path` (and, once Adam has run, "<path>.adam") get the current rows, atomically
  // each; the table keeps working on its own files. For snapshots such as a training run's checkpoint directory.
  void checkpoint_to(const std::string& path);

  Stats stats() const;
  void reset_stats();

  struct Impl;

 private:
  explicit Table(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashmem::store
