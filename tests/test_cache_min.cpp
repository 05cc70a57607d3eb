// Belady's MIN (store/cache_min.hpp) against an exhaustive search over every replacement choice on tiny random
// streams, the textbook example, and as a bound: MIN >= every online policy (random and Zipf streams), preloaded
// MIN >= the static and tiered layouts holding the same hot set.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "hashmem/error.hpp"
#include "store/cache_min.hpp"
#include "store/cache_policy.hpp"

namespace hashmem::store {
namespace {

constexpr Policy kAllPolicies[] = {Policy::lru, Policy::s3fifo, Policy::tinylfu};

// The most hits any replacement can get from position i on, trying every choice on each miss: bypass, take a
// free slot, or evict any resident row.
std::int64_t best_hits(const std::vector<std::int64_t>& s, std::size_t i, std::set<std::int64_t> cache,
                       std::size_t capacity) {
  if (i == s.size()) return 0;
  if (cache.count(s[i])) return 1 + best_hits(s, i + 1, cache, capacity);
  std::int64_t best = best_hits(s, i + 1, cache, capacity);  // bypass
  if (capacity == 0) return best;
  if (cache.size() < capacity) {
    auto with = cache;
    with.insert(s[i]);
    best = std::max(best, best_hits(s, i + 1, with, capacity));
  }
  for (std::int64_t victim : cache) {
    auto with = cache;
    with.erase(victim);
    with.insert(s[i]);
    best = std::max(best, best_hits(s, i + 1, with, capacity));
  }
  return best;
}

TEST(CacheMin, MatchesExhaustiveSearchOnTinyRandomStreams) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = 1 + rng() % 11, rows = 1 + rng() % 5, capacity = rng() % 4;
    std::vector<std::int64_t> s(n);
    for (auto& r : s) r = static_cast<std::int64_t>(rng() % rows);
    std::set<std::int64_t> initial;
    for (std::size_t k = 0; k < std::min(capacity, rng() % 3); ++k) initial.insert(static_cast<std::int64_t>(rng() % rows));
    const std::vector<std::int64_t> init(initial.begin(), initial.end());
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_EQ(simulate_min(static_cast<std::int64_t>(capacity), s.data(), n).hits, best_hits(s, 0, {}, capacity));
    EXPECT_EQ(simulate_min_preloaded(init, static_cast<std::int64_t>(capacity), s.data(), n).hits,
              best_hits(s, 0, initial, capacity));
  }
}

TEST(CacheMin, TextbookExample) {
  // Silberschatz et al.'s reference string: OPT with 3 frames and every fault admitted (demand paging) takes 9
  // faults over 20 references. MIN with bypass takes 8: the 4 at reference 8 is never used again, so it is not
  // cached and 0 stays for reference 11.
  const std::vector<std::int64_t> s = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};
  const SimResult r = simulate_min(3, s.data(), s.size());
  EXPECT_EQ(r.accesses, 20);
  EXPECT_EQ(r.accesses - r.hits, 8);
  EXPECT_EQ(r.compulsory, 6);  // rows 7, 0, 1, 2, 3, 4
}

TEST(CacheMin, CompulsoryMissesAreFirstTouchesOutsideThePreload) {
  const std::vector<std::int64_t> s = {1, 2, 3, 1, 2, 3, 4};
  EXPECT_EQ(simulate_min(0, s.data(), s.size()).compulsory, 4);
  EXPECT_EQ(simulate_min(0, s.data(), s.size()).hits, 0);
  const SimResult pre = simulate_min_preloaded({1, 2, 9}, 3, s.data(), s.size());
  EXPECT_EQ(pre.compulsory, 2);  // 3 and 4
  EXPECT_EQ(pre.hits, 5);  // 1, 2 hit; 9 makes room for 3; then 1, 2, 3 hit
  EXPECT_EQ(pre.hits, best_hits(s, 0, {1, 2, 9}, 3));
}

// A preloaded row the stream never reads is a free slot to MIN (the simulator drops it): hits and compulsory
// misses equal those of the preload without it, and of the exhaustive search with it.
TEST(CacheMin, UnreadPreloadedRowsActAsFreeSlots) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::int64_t> s(9);
    for (auto& r : s) r = static_cast<std::int64_t>(rng() % 6);
    const std::int64_t capacity = 1 + static_cast<std::int64_t>(rng() % 4);
    std::vector<std::int64_t> read, with_unread;
    for (std::int64_t r = 0; r < 6 && static_cast<std::int64_t>(with_unread.size()) < capacity; ++r) {
      if (rng() % 2) continue;
      with_unread.push_back(r);
      if (std::find(s.begin(), s.end(), r) != s.end()) read.push_back(r);
    }
    if (static_cast<std::int64_t>(with_unread.size()) < capacity) with_unread.push_back(100);  // never read
    const SimResult a = simulate_min_preloaded(with_unread, capacity, s.data(), s.size());
    const SimResult b = simulate_min_preloaded(read, capacity, s.data(), s.size());
    EXPECT_EQ(a.hits, b.hits);
    EXPECT_EQ(a.compulsory, b.compulsory);
    EXPECT_EQ(a.hits, best_hits(s, 0, {with_unread.begin(), with_unread.end()}, static_cast<std::size_t>(capacity)));
  }
}

TEST(CacheMin, RejectsBadArguments) {
  const std::vector<std::int64_t> s = {1};
  EXPECT_THROW(simulate_min(-1, s.data(), s.size()), Error);
  EXPECT_THROW(simulate_min_preloaded({1, 2}, 1, s.data(), s.size()), Error);
  EXPECT_THROW(simulate_min_preloaded({1, 1}, 2, s.data(), s.size()), Error);
  EXPECT_THROW(simulate_min_preloaded({8, 8}, 2, s.data(), s.size()), Error);  // twice, even when never read
}

TEST(CacheMin, NextUseIsTheNextIndexOfTheSameRowOrADistinctNever) {
  const std::vector<std::int64_t> s = {5, 6, 5, 5, 7};
  const std::vector<std::int64_t> next = next_use(s.data(), s.size());
  EXPECT_EQ(next[0], 2);
  EXPECT_EQ(next[2], 3);
  for (std::size_t i : {1u, 3u, 4u}) EXPECT_GE(next[i], 5);
  EXPECT_EQ(std::set<std::int64_t>(next.begin(), next.end()).size(), next.size());
}

TEST(CacheMin, BoundsEveryOnlinePolicyOnRandomAndZipfStreams) {
  std::mt19937_64 rng(11);
  std::vector<std::int64_t> uniform(20000);
  for (auto& r : uniform) r = static_cast<std::int64_t>(rng() % 3000);
  const std::vector<std::vector<std::int64_t>> streams = {uniform, zipf_stream(0.8, 50000, 100000, 1),
                                                          zipf_stream(1.1, 20000, 100000, 2)};
  for (const auto& s : streams) {
    for (std::int64_t capacity : {1, 10, 300, 2000}) {
      const SimResult min = simulate_min(capacity, s.data(), s.size());
      for (Policy p : kAllPolicies) {
        EXPECT_GE(min.hits, simulate(p, capacity, s.data(), s.size()).hits) << policy_name(p) << " at " << capacity;
      }
    }
  }
}

TEST(CacheMin, PreloadedBoundsStaticAndTieredWithTheSameHotSet) {
  const std::vector<std::int64_t> train = zipf_stream(0.9, 40000, 200000, 3);
  std::vector<std::int64_t> eval = zipf_stream(0.9, 40000, 100000, 3);  // same hot rows (same permutation seed)
  for (std::int64_t capacity : {50, 500, 5000}) {
    const std::vector<std::int64_t> hot = hottest_rows(train.data(), train.size(), capacity);
    const SimResult min = simulate_min_preloaded(hot, capacity, eval.data(), eval.size());
    EXPECT_GE(min.hits, simulate_static(hot, eval.data(), eval.size()).hits);
    const std::vector<std::int64_t> part(hot.begin(), hot.begin() + capacity * 9 / 10);
    for (Policy p : kAllPolicies) {
      EXPECT_GE(min.hits, simulate_tiered(part, p, capacity - static_cast<std::int64_t>(part.size()), eval.data(),
                                          eval.size()).hits)
          << policy_name(p) << " at " << capacity;
    }
    // Preloaded rows are evictable, so the preloaded optimum can do whatever the cold one does.
    EXPECT_GE(min.hits, simulate_min(capacity, eval.data(), eval.size()).hits);
  }
}

}  // namespace
}  // namespace hashmem::store
