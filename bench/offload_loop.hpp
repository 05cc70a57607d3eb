// The serving loops of `hashmem bench offload` (bench/offload.cpp): a decode loop of B requests and the prefill of
// one prompt, through engram::Memory (tokens → compressed ids → row ids of both Engram layers → prefetch) on
// whichever tier the memory's table is open on. The same function runs the SSD tier and the DRAM anchor.
//
// Decode step (one token per request): the step's tokens are known at its start → Memory::lookup prefetches the
// rows of every Engram layer for the whole batch → model work up to the first Engram layer → gather its rows →
// model work up to the next → gather → the rest of the step. `Schedule::layered` places the gathers where the
// layers sit in the model (a layer with id l is reached after l / model_layers of the step: the real prefetch
// lead); `Schedule::step_end` gathers everything after the whole step's work (the simpler, longest lead).
// Model work is a sleep on this thread (timer slack 1 µs): the io_uring thread of the SSD tier has the core.
//
// Threads: one (plus the store's I/O thread). Ownership: plain values; the memory and the tables are the caller's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hashmem/engram_memory.hpp"
#include "hashmem/store.hpp"

namespace hashmem::bench {

enum class Schedule { layered, step_end };
const char* schedule_name(Schedule schedule);

struct DecodeRun {
  std::int64_t batch = 0, steps = 0;
  double model_step_seconds = 0;        // S
  Schedule schedule = Schedule::layered;
  int model_layers = 43;                // layers of the model (the lead of a layer is id / model_layers of S)
};

struct DecodeResult {
  std::int64_t tokens = 0;              // batch × steps
  double seconds = 0;                   // wall time of all steps
  std::vector<double> step_seconds;     // per step
  double stall_seconds = 0;             // time in lookups and gathers (everything but model work)
  double lookup_seconds = 0;            // of which in Memory::lookup (hash, prefetch: reads submitted)
  std::vector<double> gather_seconds;   // and in each tensor's gather (waiting for reads, decoding)
  store::Stats stats;                   // the table's statistics over the run
  std::uint64_t verified_rows = 0, mismatched_rows = 0;  // against the reference table, when given
  double tokens_per_s() const;
  double percentile_step(double q) const;  // q in [0, 1]
};

// Runs `run.steps` decode steps of `requests` (one token sequence per request, each >= steps tokens; the batch is
// requests.size()). `reference`, if given, is another open table with the same rows: every gathered row is
// compared with its gather there (bit for bit), and the time that takes is left out of the step times. Stats are reset at the start. Throws Error on bad sizes.
DecodeResult decode_loop(engram::Memory& memory, const std::vector<std::vector<std::int64_t>>& requests,
                         const DecodeRun& run, store::Table* reference);

struct PrefillResult {
  std::int64_t tokens = 0;
  double seconds = 0;                   // lookup (hash + prefetch) + gather of every layer
  store::Stats stats;
  std::uint64_t verified_rows = 0, mismatched_rows = 0;
};

// One prompt at once: lookup of [1, prompt.size()] and the gather of every layer, timed.
PrefillResult prefill(engram::Memory& memory, const std::vector<std::int64_t>& prompt, store::Table* reference);

// The anchor of a layer's gather wait: batches of `reads` random 4 KiB O_DIRECT reads of [begin, end) of `path`,
// each batch submitted and reaped on this thread with io_uring (no other thread on the path), `rounds` times.
// Returns the p50 and p99 seconds per batch. Throws Error naming the file if it cannot be read.
struct BatchReadTimes {
  int reads = 0;
  double p50_seconds = 0, p99_seconds = 0;
};
BatchReadTimes raw_batch_reads(const std::string& path, std::uint64_t begin, std::uint64_t end, int reads, int rounds);

// Held-out text as requests: each take() hands out `n` consecutive tokens of one document, the documents in
// turn (a request never shares a document with the previous documents().size() − 1 takes), never the same
// tokens twice until rewind().
// The documents of a held-out text file (separated by empty lines) as token ids of the tokenizer.json at
// `tokenizer_path` (DeepSeek-V3's). Throws Error naming the file if it has no documents.
std::vector<std::vector<std::int64_t>> held_out_documents(const std::string& tokenizer_path, const std::string& path);

class RequestSource {
 public:
  explicit RequestSource(std::vector<std::vector<std::int64_t>> documents);
  // REQUIRES: some document has n tokens left, else Error naming n.
  std::vector<std::int64_t> take(std::int64_t n);
  void rewind();  // hands out the same sequence of takes again (the anchor replays the SSD tier's requests)
  std::size_t documents() const { return documents_.size(); }

 private:
  std::vector<std::vector<std::int64_t>> documents_;
  std::vector<std::size_t> used_;
  std::size_t next_ = 0;
};

}  // namespace hashmem::bench
