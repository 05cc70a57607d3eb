// hashmem/session.hpp — serving sessions: the Engram rows of a changing batch of requests, step by step, for an
// inference engine.
//
// A Session holds one engram::Memory (its table on the DRAM or SSD tier, the tokenizer compression) and a set of
// requests, each with a stable id and its own n-gram history (an engram::Stream of one sequence). An engine
//   add()s a request when it is admitted and prefill()s its prompt: the whole prompt is hashed continuing the
//     request's history and read as one batch (one prefetch per tensor), rows out as [n, layers, columns, dim];
//   then per decode step calls prefetch(ids, tokens, B) with the token just sampled for each of B requests, which
//     starts the reads of that step; runs the layers before the first Engram layer; calls gather_layer(0, ...);
//     runs more layers; calls gather_layer(1, ...) (or gather() for all layers at once);
//   remove()s a request when it finishes.
// Units: tokens are raw tokenizer ids (compressed inside with the Memory's compression; negative ids pass
// through, ids at or past the tokenizer size throw naming the request and the id — Memory::lookup's rule);
// `layers` counts the table's tensors (the Engram layers, file order), `columns` = (max_ngram − 1) · heads (24 for
// DeepSeek-V4.1), `dim` values per row. Outputs are f32 or bf16 (bits as uint16_t); f32, bf16 and fp8 rows are
// decoded. A gathered value is exactly the table's row: what Memory::lookup over the request's whole token
// sequence, from pad, would gather.
//
// Why the decode step names its requests (ids[b] for tokens[b]) instead of following the order of requests():
// an engine's batch order is its own (it reorders, pauses requests during their prefill, drops finished ones);
// naming ids makes the output row b the request it passed as b, and a wrong id an error rather than rows of
// the wrong request. Why one step in flight: the tokens of step t+1 come from the logits of step t, which need
// every layer's rows of step t; prefetch therefore throws while a step has layers not yet gathered (cancel()
// drops them).
//
// Threads: a Session belongs to one thread at a time (an engine may hand it between threads with its own
// synchronization, e.g. prefetch on the scheduler thread, gathers on the model thread). Different Sessions may be
// used from different threads at once, clone()s sharing one table included. Ownership: the Session owns its
// Memory; the table is shared by the session and its clones and closes with the last; output buffers belong to
// the caller. Errors: hashmem::Error naming the request id and the problem; a call refused for bad input (unknown
// or repeated id, bad token, misuse of the step) leaves every history unchanged: the checks and the compression
// come before any hashing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hashmem/engram_memory.hpp"
#include "hashmem/store.hpp"

namespace hashmem::engram {

using RequestId = std::int64_t;

struct SessionOptions {
  store::OpenOptions store;      // tier, dram_budget, ... (writable is ignored: sessions only read)
  // The compression JSON (`hashmem engram compress --out`) of the tokenizer the table was made for. Empty: the
  // identity over the config's compressed_vocab ids (tokens are compressed ids already); refused when the table
  // records a compression fingerprint.
  std::string compression_path;
};

class Session {
 public:
  // Opens the table at `table_path` with the Engram layout it records (metadata "engram_config") and the
  // compression of `options`. Throws Error naming the file when it is not a table, the compression file is
  // damaged or is not the one the table records, or no compression is given for a table that records one.
  static std::unique_ptr<Session> open(const std::string& table_path, const SessionOptions& options = {});
  // Over a Memory already open. REQUIRES: memory != nullptr && memory->is_open() (else Error).
  explicit Session(std::unique_ptr<Memory> memory);
  // A new session on the same table and compression, with no requests: one per engine thread without a second
  // copy of the table (many threads may read one table, store.hpp). Each clone belongs to its own thread.
  std::unique_ptr<Session> clone() const;
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::int64_t layers() const { return static_cast<std::int64_t>(memory_->tensors()); }
  std::int64_t columns() const { return memory_->columns(); }
  std::int64_t dim() const { return memory_->row_dim(); }
  std::int64_t values_per_token() const { return layers() * columns() * dim(); }  // one token's gather
  std::vector<std::int64_t> layer_ids() const;  // the Engram layer id of each tensor
  Memory& memory() { return *memory_; }

  // ---- requests ----
  // A new request with a fresh history (pad). Ids are never reused (1, 2, 3, ...).
  RequestId add();
  // Drops the request's history. A step in flight keeps the rows it already named: its gathers still write the
  // removed request's rows at its position (the engine ignores them). Throws Error for an unknown id.
  void remove(RequestId id);
  bool contains(RequestId id) const { return requests_.count(id) != 0; }
  std::vector<RequestId> requests() const;      // live requests, in the order added
  std::int64_t tokens_seen(RequestId id) const;  // tokens hashed so far (prompt + steps); Error if unknown

  // ---- prefill ----
  // Hashes tokens[0..n) continuing request `id`'s history, reads all their rows as one batch and writes them into
  // out[n, layers, columns, dim]. May be called more than once (chunked prefill) and between decode steps.
  // REQUIRES: n >= 0; tokens and out non-null when n > 0. Throws Error: unknown id, a bad token id (named with its
  // position), or a table error; the history is then unchanged.
  void prefill(RequestId id, const std::int64_t* tokens, std::int64_t n, float* out);
  void prefill(RequestId id, const std::int64_t* tokens, std::int64_t n, std::uint16_t* out_bf16);
  // Several requests' prompts at once (an engine's batched prefill): request ids[i] gets the next lengths[i] tokens
  // of `tokens` (the prompts concatenated in the order of ids); every read starts before the first gather, so they
  // overlap. out[sum of lengths, layers, columns, dim], in the same order. REQUIRES: count >= 0, each id at most
  // once, lengths >= 0. Throws Error as prefill does, before any history moves.
  void prefill_batch(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                     const std::int64_t* tokens, float* out);
  void prefill_batch(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                     const std::int64_t* tokens, std::uint16_t* out_bf16);

  // ---- decode steps ----
  // Starts step t+1: tokens[b] is the next token of request ids[b], b < batch; the rows of every layer are
  // prefetched (one prefetch per tensor for the whole batch). Any subset of the live requests, each at most once.
  // Throws Error (before any history moves): a step still has ungathered layers, unknown or repeated id, bad token,
  // batch < 0, null arrays with batch > 0.
  void prefetch(const RequestId* ids, const std::int64_t* tokens, std::int64_t batch);
  // Requests of the step in flight (prefetch's batch), 0 when none.
  std::int64_t step_batch() const { return step_ ? step_->lookup.batch : 0; }
  // Every layer not yet gathered → out[batch, layers, columns, dim] (waits for reads in flight) and ends the step.
  // Throws Error when no step is in flight or a layer of it was already gathered by gather_layer.
  void gather(float* out);
  void gather(std::uint16_t* out_bf16);
  // One layer (tensor index, 0 ≤ layer < layers()) of the step → out[batch, columns, dim]. The step ends when
  // every layer has been gathered. Throws Error: no step in flight, layer out of range or already gathered.
  void gather_layer(std::int64_t layer, float* out);
  void gather_layer(std::int64_t layer, std::uint16_t* out_bf16);
  // Drops the step in flight (its reads are released; histories keep its tokens). No-op without one.
  void cancel() { step_.reset(); }

 private:
  struct Request {
    Stream stream;
    std::int64_t tokens = 0;
  };
  struct Step {
    Lookup lookup;
    std::vector<bool> gathered;  // per layer
    std::int64_t left = 0;       // layers not yet gathered
  };
  Request& find(RequestId id, const char* what);
  void check_tokens(RequestId id, const std::int64_t* tokens, std::int64_t n, const char* what) const;
  template <class Out>
  void prefill_into(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                    const std::int64_t* tokens, Out* out, const char* what);
  template <class Out>
  void gather_rows(Lookup& l, std::int64_t n, Out* out);
  template <class Out>
  void gather_all(Out* out);
  template <class Out>
  void gather_one(std::int64_t layer, Out* out, const char* what);

  std::unique_ptr<Memory> memory_;
  std::map<RequestId, Request> requests_;  // ids grow, so map order = order added
  RequestId next_id_ = 1;
  std::unique_ptr<Step> step_;
  std::vector<float> scratch_f32_;          // one layer's rows before they are interleaved into [n, layers, ...]
  std::vector<std::uint16_t> scratch_bf16_;
};

}  // namespace hashmem::engram
