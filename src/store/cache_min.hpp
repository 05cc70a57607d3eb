// Belady's MIN: the offline optimal replacement for a cache of fixed capacity, as a simulator beside the online
// policies of cache_policy.hpp (docs/cache_study.md).
//
// On a miss MIN may bypass (not cache the row) or evict the resident row whose next use is farthest in the future;
// it bypasses when the missing row's own next use is farther than every resident's. With bypass allowed this
// maximises hits over every replacement that starts from the same contents (Belady 1966; Mattson et al. 1970),
// so it bounds every online policy here (LRU, S3-FIFO, W-TinyLFU may refuse or must admit; either way they
// choose among what MIN chooses from).
//
// The preloaded variant starts with `initial` resident (evictable like any row): it bounds every policy that
// starts from those contents, e.g. a static hot set plus an empty dynamic part (simulate_tiered) or a static set
// alone (simulate_static), when `initial` holds their static rows.
//
// Cost: O(n log n) time, O(n) memory (next-use indices computed backwards with a RowMap, a max-heap on next use
// with lazy deletion of stale entries).
// Threads: pure functions, reentrant. Ownership: results are plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "store/cache_policy.hpp"

namespace hashmem::store {

// MIN over a cache of `capacity` rows that starts empty. SimResult::compulsory = first touches (no replacement
// can hit them). REQUIRES: capacity >= 0; throws Error otherwise.
SimResult simulate_min(std::int64_t capacity, const std::int64_t* stream, std::size_t n);

// MIN over `capacity` rows starting with `initial` resident (distinct rows, at most `capacity` of them; throws
// Error otherwise). SimResult::compulsory = first touches of rows outside `initial`. Rows of `initial` the stream
// never reads are MIN's first victims at no cost, i.e. free slots: they are dropped before simulating, so memory
// is O(n + rows read), whatever the size of `initial`.
SimResult simulate_min_preloaded(const std::vector<std::int64_t>& initial, std::int64_t capacity,
                                 const std::int64_t* stream, std::size_t n);

// For each i, the index of the next access to stream[i] after i, or n + (a distinct number) when there is none
// (so every value is unique and > i). Used by simulate_min; exposed for tests.
std::vector<std::int64_t> next_use(const std::int64_t* stream, std::size_t n);

}  // namespace hashmem::store
