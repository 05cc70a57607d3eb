#include "store/cache_min.hpp"

#include <algorithm>
#include <functional>
#include <queue>
#include <string>
#include <utility>

#include "hashmem/error.hpp"
#include "store/row_map.hpp"

namespace hashmem::store {

std::vector<std::int64_t> next_use(const std::int64_t* stream, std::size_t n) {
  std::vector<std::int64_t> next(n);
  RowMap later(n / 4);  // row -> index of its next access after the current position
  std::int64_t never = static_cast<std::int64_t>(n);
  for (std::size_t i = n; i-- > 0;) {
    const std::int64_t at = later.find(stream[i]);
    next[i] = at >= 0 ? at : never++;
    later.set(stream[i], static_cast<std::int64_t>(i));
  }
  return next;
}

namespace {

// The resident rows of MIN: row -> its next use, and a max-heap of (next use, row) whose entries are stale when
// the row left or its next use moved on (every next-use value is unique, so equality identifies the live entry).
class MinCache {
 public:
  explicit MinCache(std::int64_t capacity) : capacity_(capacity), next_of_(static_cast<std::size_t>(capacity)) {}

  bool resident(std::int64_t row) const { return next_of_.find(row) >= 0; }
  void set_next(std::int64_t row, std::int64_t next) {
    next_of_.set(row, next);
    heap_.emplace(next, row);
  }
  // The resident row used farthest ahead (its next use in *next), or −1 when nothing is resident.
  std::int64_t farthest(std::int64_t* next) {
    while (!heap_.empty() && next_of_.find(heap_.top().second) != heap_.top().first) heap_.pop();
    if (heap_.empty()) return -1;
    *next = heap_.top().first;
    return heap_.top().second;
  }
  // Many rows at once (the preload): one heap construction instead of a push each.
  void set_all(const std::vector<std::int64_t>& rows, const std::vector<std::int64_t>& next) {
    std::vector<std::pair<std::int64_t, std::int64_t>> entries;
    entries.reserve(rows.size());
    for (std::size_t k = 0; k < rows.size(); ++k) {
      if (next_of_.find(rows[k]) >= 0) throw Error("simulate_min: preloaded row " + std::to_string(rows[k]) + " twice");
      next_of_.set(rows[k], next[k]);
      entries.emplace_back(next[k], rows[k]);
    }
    heap_ = Heap(Heap::value_compare(), std::move(entries));
  }
  void evict(std::int64_t row) { next_of_.erase(row); }
  bool full() const { return static_cast<std::int64_t>(next_of_.size()) >= capacity_; }

 private:
  std::int64_t capacity_;
  RowMap next_of_;
  using Heap = std::priority_queue<std::pair<std::int64_t, std::int64_t>>;
  Heap heap_;
};

// The first access of each row of `initial` (or a distinct never-value past the stream's).
std::vector<std::int64_t> first_uses(const std::vector<std::int64_t>& initial, const std::int64_t* stream,
                                     std::size_t n) {
  // −2: preloaded, not read yet (find gives −1 for rows outside the map, which must not be added to it).
  RowMap first(initial.size());
  for (std::int64_t r : initial) {
    if (first.find(r) == -2) throw Error("simulate_min: preloaded row " + std::to_string(r) + " twice");
    first.set(r, -2);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (first.find(stream[i]) == -2) first.set(stream[i], static_cast<std::int64_t>(i));
  }
  // never-values of next_use are n .. 2n−1; these start at 2n so they stay distinct.
  std::vector<std::int64_t> out(initial.size());
  std::int64_t never = 2 * static_cast<std::int64_t>(n);
  for (std::size_t k = 0; k < initial.size(); ++k) {
    const std::int64_t at = first.find(initial[k]);
    out[k] = at >= 0 ? at : never++;
  }
  return out;
}

SimResult run_min(const std::vector<std::int64_t>& initial, std::int64_t capacity, const std::int64_t* stream,
                  std::size_t n) {
  if (capacity < 0) throw Error("simulate_min: capacity must be >= 0, got " + std::to_string(capacity));
  if (static_cast<std::int64_t>(initial.size()) > capacity) {
    throw Error("simulate_min: " + std::to_string(initial.size()) + " preloaded rows exceed the capacity " +
                std::to_string(capacity));
  }
  // A preloaded row the stream never reads is MIN's first victim, at no cost: it is a free slot. Only the read
  // ones are kept (same hits, memory bounded by the stream's rows instead of the preload's).
  std::vector<std::int64_t> kept, kept_first;
  {
    const std::vector<std::int64_t> first = first_uses(initial, stream, n);
    for (std::size_t k = 0; k < initial.size(); ++k) {
      if (first[k] < static_cast<std::int64_t>(n)) {
        kept.push_back(initial[k]);
        kept_first.push_back(first[k]);
      }
    }
  }
  const std::vector<std::int64_t> next = next_use(stream, n);
  MinCache cache(std::min<std::int64_t>(capacity, static_cast<std::int64_t>(n)));
  RowMap seen(kept.size());  // rows touched or preloaded so far: a miss on any other row is compulsory
  cache.set_all(kept, kept_first);
  for (std::int64_t row : kept) seen.set(row, 1);
  SimResult r;
  r.accesses = static_cast<std::int64_t>(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t row = stream[i];
    if (cache.resident(row)) {
      ++r.hits;
      cache.set_next(row, next[i]);
      continue;
    }
    if (seen.find(row) < 0) {
      ++r.compulsory;
      seen.set(row, 1);
    }
    if (capacity == 0) continue;
    if (cache.full()) {
      std::int64_t victim_next = 0;
      const std::int64_t victim = cache.farthest(&victim_next);
      if (victim_next < next[i]) continue;  // bypass: the new row is used after every resident one
      cache.evict(victim);
    }
    cache.set_next(row, next[i]);
  }
  return r;
}

}  // namespace

SimResult simulate_min(std::int64_t capacity, const std::int64_t* stream, std::size_t n) {
  return run_min({}, capacity, stream, n);
}

SimResult simulate_min_preloaded(const std::vector<std::int64_t>& initial, std::int64_t capacity,
                                 const std::int64_t* stream, std::size_t n) {
  return run_min(initial, capacity, stream, n);
}

}  // namespace hashmem::store
