// TierBackend: the rows of an open table on one tier — one interface, one file per implementation:
//   dram_tier.cpp    the whole table in memory (2 MiB pages);
//   cached_tier.cpp  a DRAM hot cache (static hot set + a cache policy), staging buffers and prefetch tickets in
//                    front of a RowDevice: the SSD tier is a cached tier over the table file (file_device.cpp),
//                    and a remote tier is a cached tier over its own device.
// store::Table (table.cpp) checks arguments, decodes rows into the caller's dtype, runs updates (update.cpp) and
// checkpoints (checkpoint.cpp) through this interface and knows no tier by name beyond choosing one at open.
//
// Rows are named by global row id: the rows of every tensor numbered one after another, in file order.
// Threads: prefetch/gather/release may run on many threads at once (a backend locks what it shares); updates run
// between begin_updates() and end_updates() while the table is held exclusively, so no gather runs beside them
// (prefetches may: they only classify rows and start reads).
// Errors: hashmem::Error naming the file, the byte offset and the row. After a failed gather the ticket is
// consumed and everything it pinned is released: the backend keeps serving what it holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "hashmem/store.hpp"
#include "store/row_device.hpp"

namespace hashmem::store {

class TierBackend;

// Where a prefetched row is found at gather time.
enum RowKind : std::uint8_t { kResident, kStatic, kSlot, kStaging, kDeferred };

struct Ticket::State {
  TierBackend* owner = nullptr;
  std::vector<std::int64_t> rows;   // global row ids
  std::vector<std::uint8_t> kind;   // RowKind, per row
  std::vector<std::int64_t> where;  // static or dynamic slot, or staging index, per row
  bool consumed = false;
};

// Receives the rows of a gather one at a time, in the ticket's order, as their stored bytes (row_bytes, valid during
// the call).
class RowSink {
 public:
  virtual void row(std::size_t i, const std::uint8_t* bytes) = 0;

 protected:
  ~RowSink() = default;
};

class TierBackend {
 public:
  virtual ~TierBackend() = default;

  // Classifies the ticket's rows (ids already checked) and starts the reads of those not at hand.
  virtual void prefetch(Ticket::State& st) = 0;
  // Hands every row of the ticket to `sink`, waiting for reads still in flight, then releases the ticket.
  // REQUIRES: !st.consumed. On a failed read: releases the ticket and throws.
  virtual void gather(Ticket::State& st, RowSink& sink) = 0;
  // Rows [0, n) of `rows` (global ids, checked) to `sink` without a ticket: prefetch + gather unless the backend
  // has a faster way (DRAM: a straight copy loop).
  virtual void gather_now(const std::int64_t* rows, std::size_t n, RowSink& sink);
  // Releases a ticket destroyed before it was gathered. Must not throw.
  virtual void release(Ticket::State& st) noexcept = 0;

  // Updates. begin_update(g) returns row g's current stored bytes, writable; the caller changes them in place and
  // calls end_update(g), which makes every copy of the row agree (a ticket in flight sees the new bytes).
  virtual void begin_updates() {}
  virtual void end_updates() {}
  virtual std::uint8_t* begin_update(std::int64_t g) = 0;
  virtual void end_update(std::int64_t g) = 0;
  // A hint that begin_update(g) follows soon (DRAM: start the cache misses of the row).
  virtual void prefetch_for_update(std::int64_t) const {}
  // True when begin/end_update of distinct rows may run on several threads at once.
  virtual bool parallel_updates() const { return false; }

  // Checkpoints (table held exclusively). flush() makes the backing hold every row's current bytes (dirty rows
  // written back and synced); read_range() then copies rows [first, first + n) out.
  virtual void flush() = 0;
  virtual void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) = 0;

  virtual Stats stats() const = 0;
  virtual void reset_stats() = 0;
};

// The whole table at `path` in DRAM.
std::unique_ptr<TierBackend> make_dram_tier(const std::string& path, const TableInfo& info);

// A DRAM hot cache of options.dram_budget bytes in front of `device`: a static hot set of `hot_rows` (global ids,
// hottest first; loaded now) taking up to options.static_fraction of the budget, the rest a cache run by
// options.policy, and options.staging_bytes of read buffers for rows in flight.
std::unique_ptr<TierBackend> make_cached_tier(std::unique_ptr<RowDevice> device, const TableInfo& info,
                                              const OpenOptions& options, const std::vector<std::int64_t>& hot_rows);

}  // namespace hashmem::store
