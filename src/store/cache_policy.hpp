// Cache policies of the SSD tier's dynamic DRAM cache, and simulators for choosing one.
//
// A CachePolicy manages `capacity` slots (0..capacity−1) keyed by row id (>= 0); the caller keeps the row bytes
// in its own slot array. lookup() is one access (it updates recency/frequency; W-TinyLFU also counts misses in
// its sketch); after a miss the caller fetches the row and calls admit(), which returns the slot to fill (or −1:
// refused, or every eviction candidate is pinned) and the row evicted from it. Pinned slots (rows referenced by a
// prefetch in flight) are never evicted.
//
// Policies: LRU; S3-FIFO (Yang et al., SOSP'23: 10 % small FIFO, 90 % main FIFO with 2-bit frequencies, ghost
// FIFO of rows evicted from the small queue); W-TinyLFU (Einziger et al., as in Caffeine: 1 % window LRU, main
// SLRU 20 % probation / 80 % protected, admission by a 4-bit count-min sketch with halving every 10·capacity
// accesses). docs/store.md has the details and measured hit ratios.
//
// Threads: not thread-safe; the store serialises calls with its own mutex. Simulators are pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hashmem/store.hpp"

namespace hashmem::store {

class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  // The slot holding `row`, or −1. Counts as an access.
  virtual std::int64_t lookup(std::int64_t row) = 0;
  // A hint that lookup(row) follows soon (starts the cache misses of the lookup).
  virtual void prefetch(std::int64_t row) const = 0;
  // After a miss on `row` (not cached): the slot to fill, or −1 if not admitted. *evicted = the row whose slot
  // is reused, or −1 when a free slot was used or nothing was admitted.
  virtual std::int64_t admit(std::int64_t row, std::int64_t* evicted) = 0;
  virtual void pin(std::int64_t slot) = 0;
  virtual void unpin(std::int64_t slot) = 0;
  virtual std::int64_t capacity() const = 0;
  virtual std::int64_t size() const = 0;
};

// REQUIRES: capacity >= 0 (0: everything misses, nothing is admitted).
std::unique_ptr<CachePolicy> make_policy(Policy policy, std::int64_t capacity);

struct SimResult {
  std::int64_t accesses = 0, hits = 0;
  double hit_ratio() const { return accesses ? static_cast<double>(hits) / static_cast<double>(accesses) : 0.0; }
};

// A dynamic cache of `capacity` rows fed by the stream (lookup, admit on a miss).
SimResult simulate(Policy policy, std::int64_t capacity, const std::int64_t* stream, std::size_t n);
// The k most frequent rows of a stream, most frequent first (ties: smaller row id first). The oracle static
// hot set of a stream is hottest_rows of that same stream.
std::vector<std::int64_t> hottest_rows(const std::int64_t* stream, std::size_t n, std::int64_t k);
// A fixed set of rows: hit iff the row is in it.
SimResult simulate_static(const std::vector<std::int64_t>& hot_rows, const std::int64_t* stream, std::size_t n);
// The SSD tier's layout: a static set, then a dynamic policy on `dynamic_capacity` more rows.
SimResult simulate_tiered(const std::vector<std::int64_t>& static_rows, Policy policy, std::int64_t dynamic_capacity,
                          const std::int64_t* stream, std::size_t n);

}  // namespace hashmem::store
