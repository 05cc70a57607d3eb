// hashmem/engram_memory.hpp — the Engram memory: the one path from tokens to table rows.
//
//   token ids ──compress_ids──▶ compressed ids ──hash (per table tensor)──▶ row ids ──prefetch──▶ store::Table
//             (engram.hpp)                      (engram.hpp)                          (store.hpp: DRAM / SSD tier)
//
// Training windows, evaluation and generation all enter the store through Memory::lookup, which returns the row
// ids of every table tensor and their reads already started; gather() then decodes each tensor's rows and
// update() applies an optimizer step to them. A Stream carries each sequence's n-gram history from one lookup to
// the next (generation: the prompt, then one token at a time); without one, every sequence starts from pad.
//
// Token ids follow one rule everywhere (compress_ids, SPEC §2): negative ids pass through compression unchanged
// and hash with numpy's semantics; ids at or past the tokenizer size throw Error naming the id and position.
//
// Threads: a Memory belongs to one thread (its table may be read by others, see store.hpp); a Stream belongs to
// one thread. Ownership: Memory owns its table once open()ed (shared with the Memories it was handed to); a Lookup owns its tickets (a Lookup dropped
// before its gathers releases what it pinned). REQUIRES: every Lookup is dropped before its Memory. Errors: hashmem::Error naming the file, id or problem.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hashmem/engram.hpp"
#include "hashmem/store.hpp"

namespace hashmem::engram {

// What one lookup started: the row ids of every table tensor and their reads.
struct Lookup {
  std::int64_t batch = 0, seq = 0;
  std::vector<std::vector<std::int64_t>> rows;  // [tensor][(b·seq + t)·columns + column], table-global row ids
  std::vector<store::Ticket> tickets;           // [tensor], reads in flight; each gathered at most once
};

// The n-gram histories of `batch` sequences, carried across lookups. Made by Memory::stream.
class Stream {
 public:
  ~Stream();
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  void reset();  // every sequence starts again from pad (a fresh window)
  std::int64_t batch() const { return batch_; }

 private:
  friend class Memory;
  Stream(const Layout& layout, std::int64_t batch);
  std::int64_t batch_ = 0;
  std::vector<std::unique_ptr<StreamingHasher>> hashers_;  // one per table tensor
};

class Memory {
 public:
  // `layout`: the table's Engram constants (one tensor per layer of layout.config); `row_dim`: values per row;
  // `compression`: tokenizer id → compressed id (compressed_vocab must equal layout.config.compressed_vocab).
  // Throws Error when they disagree.
  Memory(Layout layout, std::int64_t row_dim, Compression compression);
  ~Memory();
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  const Layout& layout() const { return layout_; }
  std::int64_t row_dim() const { return row_dim_; }
  std::int64_t columns() const { return layout_.config.columns(); }
  std::int64_t width() const { return columns() * row_dim_; }  // values per token per tensor
  std::size_t tensors() const { return layout_.layers.size(); }

  // A fresh table for this memory at `path` (f32 rows, normal(0, stddev) from `seed`), tied to the compression.
  void create(const std::string& path, std::uint64_t seed, float stddev) const;
  // Opens `path` for lookups (on the cluster tier the path is ignored: options.name names the pushed table). Throws
  // Error when its Engram constants or row width differ from this memory's.
  void open(const std::string& path, const store::OpenOptions& options);
  // Uses a table already open (shared with other Memories, e.g. sessions on several threads: store.hpp lets many
  // threads read one table). REQUIRES: table != nullptr. Throws Error as open() does.
  void open(std::shared_ptr<store::Table> table);
  // The open table, for sharing. REQUIRES: is_open().
  const std::shared_ptr<store::Table>& shared_table() const { return table_; }
  bool is_open() const { return table_ != nullptr; }
  // REQUIRES: is_open().
  store::Table& table() { return *table_; }

  Stream stream(std::int64_t batch) const;
  const Compression& compression() const { return compression_; }

  // Token ids [batch, seq] → row ids of every tensor, their reads started. Without `stream` every sequence
  // starts from pad; with one (REQUIRES: stream->batch() == batch) each continues its history. `count` adds the
  // rows to the access profile. REQUIRES: is_open().
  Lookup lookup(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, Stream* stream = nullptr,
                bool count = false);
  // The same with one stream per sequence: sequence b continues streams[b] (REQUIRES: streams[b]->batch() == 1,
  // no stream named twice). For a batch whose sequences come and go (engram::Session): still one prefetch per
  // tensor. A bad token id throws before any history moves.
  Lookup lookup_streams(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, Stream* const* streams,
                        bool count = false);
  // Tensor `tensor`'s rows of `l` as float32 (or bf16 bits) [batch, seq, width] into `out` (waits for their reads).
  void gather(Lookup& l, std::size_t tensor, float* out);
  void gather(Lookup& l, std::size_t tensor, std::uint16_t* out_bf16);
  // One optimizer step on tensor `tensor`'s rows of `l`, gradients [batch, seq, width] (duplicates summed).
  void update(const Lookup& l, std::size_t tensor, const float* grads, const store::UpdateOptions& options);

  // The access profile (rows counted by lookups) as safetensors ("counts.<layer id>", U32 [rows]) and back.
  void write_profile(const std::string& path) const;
  void read_profile(const std::string& path);
  // The hottest rows per tensor, hottest first, `total` in all (ranked across tensors; ties by tensor, row): the
  // static hot set of the SSD tier (store::OpenOptions::hot_rows).
  std::vector<std::vector<std::int64_t>> hot_rows(std::int64_t total) const;

 private:
  // compress → hash (by `hash`: tensor, compressed ids, rows out) → count → one prefetch per tensor.
  using HashFn = std::function<void(std::size_t, const std::int64_t*, std::int64_t*)>;
  Lookup start(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, const HashFn& hash, bool count);
  void check_table(const store::TableInfo& info) const;  // the Engram constants and compression fingerprint

  Layout layout_;
  std::int64_t row_dim_;
  Compression compression_;
  std::shared_ptr<store::Table> table_;
  std::vector<std::vector<std::uint32_t>> counts_;  // per tensor, per row
  std::vector<std::int64_t> compressed_;             // scratch
};

// The identity compression of a `vocab`-id tokenizer (ablations that turn compression off).
Compression identity_compression(std::int64_t vocab);

// Reads what compression_json wrote. Throws Error naming the file when it is not that JSON, a lookup entry is
// not a compressed id (an integer in [0, entries)), or its sizes or SHA-256 disagree with the lookup.
Compression read_compression_json(const std::string& path);
// The same from the file's text (`path` names it in errors).
Compression parse_compression_json(std::string_view text, const std::string& path);

}  // namespace hashmem::engram
