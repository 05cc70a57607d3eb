// Cache policies of the SSD tier's dynamic DRAM cache, and simulators for choosing one.
//
// A CachePolicy manages `capacity` slots (0..capacity−1) keyed by row id (>= 0); the caller keeps the row bytes
// in its own slot array. lookup() is one access; after a miss the caller fetches the row and calls admit(),
// which returns the slot to fill (or −1) and the row evicted from it. Pinned slots (rows referenced by a
// prefetch in flight) are never evicted. Every policy costs O(1) amortised per call: intrusive lists through the
// slot arrays and one open-addressing row → slot map; eviction skips pinned slots one by one.
//
// Policies (docs/store.md, "Cache policies", has the parameters, references and measured hit ratios):
//   lru      one recency list.
//   s3fifo   S3-FIFO (Yang et al., SOSP'23): 10 % small FIFO, 90 % main FIFO with 2-bit frequencies, ghost
//            FIFO of the last (main's size) rows evicted from the small queue.
//   tinylfu  W-TinyLFU (Einziger et al., as in Caffeine): 1 % window LRU, main SLRU 20 % probation / 80 %
//            protected, admission by a 4-bit count-min sketch halved every 10·capacity counted accesses.
//
// What records an access: lookup() only. LRU moves a hit to the front; S3-FIFO raises a hit's frequency (capped
// at 3); W-TinyLFU counts every lookup in its sketch, hit or miss, and moves a hit within its segments. admit()
// records nothing (the lookup that missed has already been counted).
//
// Threads: not thread-safe; the store serialises calls with its own mutex. Simulators are pure functions.
// Ownership: a policy owns its bookkeeping only (no row data).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hashmem/store.hpp"

namespace hashmem::store {

class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  CachePolicy() = default;
  CachePolicy(const CachePolicy&) = delete;
  CachePolicy& operator=(const CachePolicy&) = delete;

  // The slot holding `row`, or −1. Counts as an access (see above). REQUIRES: row >= 0.
  virtual std::int64_t lookup(std::int64_t row) = 0;
  // A hint that lookup(row) follows soon (starts the cache misses of the lookup).
  virtual void prefetch(std::int64_t row) const = 0;
  // After lookup(row) missed, once the caller can fill a slot: the slot to fill, or −1 when nothing can be
  // admitted (capacity 0, or every eviction candidate is pinned: the row is then simply not cached and the
  // policy is unchanged). *evicted = the row whose slot is reused (the caller drops or writes back its bytes),
  // or −1 when a free slot was used or nothing was admitted. At most one row is evicted per call.
  // W-TinyLFU never refuses the new row itself: it enters the window, and the frequency filter decides between
  // the window's oldest row and main's oldest probation row, so *evicted may be either.
  // REQUIRES: row >= 0 and not cached.
  virtual std::int64_t admit(std::int64_t row, std::int64_t* evicted) = 0;
  // The slot holds `row` from now on, keeping its place in the policy's order. It undoes an admission whose evicted
  // row could not be written back: the evicted row returns to its slot. REQUIRES: the slot holds a row, `row` is
  // not cached.
  virtual void replace(std::int64_t slot, std::int64_t row) = 0;
  // Pin counts: a slot pinned n times needs n unpins before it can be evicted. REQUIRES: 0 <= slot < capacity,
  // the slot holds a row, and unpin follows a pin.
  virtual void pin(std::int64_t slot) = 0;
  virtual void unpin(std::int64_t slot) = 0;
  virtual std::int64_t capacity() const = 0;
  virtual std::int64_t size() const = 0;  // rows cached, <= capacity
};

// REQUIRES: capacity >= 0 (0: everything misses, nothing is admitted); throws Error naming it otherwise.
std::unique_ptr<CachePolicy> make_policy(Policy policy, std::int64_t capacity);

struct SimResult {
  std::int64_t accesses = 0, hits = 0;
  // Misses no replacement can avoid (first touches of rows not resident at the start); filled by the MIN
  // simulators (cache_min.hpp) only, 0 elsewhere.
  std::int64_t compulsory = 0;
  double hit_ratio() const { return accesses ? static_cast<double>(hits) / static_cast<double>(accesses) : 0.0; }
};

// A dynamic cache of `capacity` rows fed by the stream (lookup, admit on a miss).
SimResult simulate(Policy policy, std::int64_t capacity, const std::int64_t* stream, std::size_t n);
// The k most frequent rows of a stream, most frequent first (ties: smaller row id first). The oracle static
// hot set of a stream is hottest_rows of that same stream.
std::vector<std::int64_t> hottest_rows(const std::int64_t* stream, std::size_t n, std::int64_t k);
// A fixed set of rows: hit iff the row is in it.
SimResult simulate_static(const std::vector<std::int64_t>& hot_rows, const std::int64_t* stream, std::size_t n);
// The SSD tier's layout: a static set, then a dynamic policy on `dynamic_capacity` more rows (rows of the static
// set never reach the policy).
SimResult simulate_tiered(const std::vector<std::int64_t>& static_rows, Policy policy, std::int64_t dynamic_capacity,
                          const std::int64_t* stream, std::size_t n);

// A synthetic stream for the simulators: n accesses drawn from Zipf(alpha) over `rows` ranks (rank r with
// probability ∝ (r+1)^−alpha, by inverse CDF), rank r mapped to row perm[r] for a seeded permutation of
// 0..rows−1 (so hot rows are scattered like hashed ids). Deterministic in (alpha, rows, n, seed) for a given
// standard library. REQUIRES: rows >= 1, alpha >= 0; throws Error naming the argument otherwise.
std::vector<std::int64_t> zipf_stream(double alpha, std::int64_t rows, std::size_t n, std::uint64_t seed);

}  // namespace hashmem::store
