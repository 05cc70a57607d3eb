// Cache policies of the SSD tier: LRU against a naive reference, invariants of every policy under random
// streams with pins, scan resistance, and the simulators.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <random>
#include <set>

#include "hashmem/error.hpp"
#include "store/cache_policy.hpp"

namespace hashmem::store {
namespace {

std::vector<std::int64_t> zipf(std::int64_t keys, double alpha, std::size_t n, std::uint64_t seed) {
  std::vector<double> cdf(static_cast<std::size_t>(keys));
  double sum = 0;
  for (std::int64_t k = 0; k < keys; ++k) cdf[static_cast<std::size_t>(k)] = sum += std::pow(k + 1.0, -alpha);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<std::int64_t> out(n);
  for (auto& r : out) r = (std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin()) * 7919 % 1000003;
  return out;
}

TEST(StoreCache, LruMatchesANaiveList) {
  for (std::int64_t capacity : {1, 2, 7, 50}) {
    auto lru = make_policy(Policy::lru, capacity);
    std::list<std::int64_t> naive;  // front = most recent
    std::mt19937_64 rng(capacity);
    for (int i = 0; i < 20000; ++i) {
      const std::int64_t row = static_cast<std::int64_t>(rng() % 100);
      auto it = std::find(naive.begin(), naive.end(), row);
      const bool naive_hit = it != naive.end();
      if (naive_hit) naive.erase(it);
      std::int64_t expected_evicted = -1;
      if (!naive_hit && static_cast<std::int64_t>(naive.size()) == capacity) {
        expected_evicted = naive.back();
        naive.pop_back();
      }
      naive.push_front(row);
      const std::int64_t slot = lru->lookup(row);
      ASSERT_EQ(slot >= 0, naive_hit) << i;
      if (!naive_hit) {
        std::int64_t evicted;
        ASSERT_GE(lru->admit(row, &evicted), 0);
        ASSERT_EQ(evicted, expected_evicted);
      }
    }
  }
}

// Every policy: slots stay consistent (a row keeps its slot until evicted, no two live rows share one),
// size <= capacity, pinned slots are never taken.
TEST(StoreCache, EveryPolicyKeepsSlotsConsistentUnderPins) {
  for (Policy p : {Policy::lru, Policy::s3fifo, Policy::tinylfu}) {
    for (std::int64_t capacity : {1, 3, 10, 200}) {
      SCOPED_TRACE(std::string(policy_name(p)) + " capacity " + std::to_string(capacity));
      auto cache = make_policy(p, capacity);
      std::map<std::int64_t, std::int64_t> row_slot, slot_row;
      std::multiset<std::int64_t> pinned;
      std::mt19937_64 rng(11);
      const auto stream = zipf(500, 0.9, 30000, capacity);
      for (std::int64_t row : stream) {
        const std::int64_t s = cache->lookup(row);
        if (s >= 0) {
          ASSERT_EQ(row_slot.at(row), s);
        } else {
          ASSERT_EQ(row_slot.count(row), 0u);
          std::int64_t evicted;
          const std::int64_t slot = cache->admit(row, &evicted);
          if (slot < 0) {
            ASSERT_EQ(evicted, -1);
            continue;
          }
          ASSERT_LT(slot, capacity);
          ASSERT_EQ(pinned.count(slot), 0u) << "a pinned slot was reused";
          if (evicted >= 0) {
            ASSERT_EQ(row_slot.at(evicted), slot);
            row_slot.erase(evicted);
            slot_row.erase(slot);
          }
          ASSERT_EQ(slot_row.count(slot), 0u) << "slot handed out twice";
          row_slot[row] = slot;
          slot_row[slot] = row;
        }
        ASSERT_LE(cache->size(), capacity);
        ASSERT_EQ(cache->size(), static_cast<std::int64_t>(row_slot.size()));
        // Pin or unpin something now and then (at most half the slots pinned).
        if (rng() % 4 == 0 && !row_slot.empty() && static_cast<std::int64_t>(pinned.size()) < capacity / 2) {
          auto it = row_slot.begin();
          std::advance(it, static_cast<long>(rng() % row_slot.size()));
          cache->pin(it->second);
          pinned.insert(it->second);
        } else if (rng() % 3 == 0 && !pinned.empty()) {
          auto it = pinned.begin();
          cache->unpin(*it);
          pinned.erase(it);
        }
      }
      // Everything pinned: nothing can be admitted.
      for (const auto& [slot, row] : slot_row) cache->pin(slot);
      if (cache->size() == capacity) {
        std::int64_t evicted;
        EXPECT_EQ(cache->admit(9999999, &evicted), -1);
      }
    }
  }
}

TEST(StoreCache, CapacityZeroAdmitsNothing) {
  for (Policy p : {Policy::lru, Policy::s3fifo, Policy::tinylfu}) {
    auto cache = make_policy(p, 0);
    std::int64_t evicted;
    EXPECT_EQ(cache->lookup(5), -1);
    EXPECT_EQ(cache->admit(5, &evicted), -1);
    EXPECT_EQ(cache->lookup(5), -1);
  }
  EXPECT_THROW(make_policy(Policy::lru, -1), Error);
}

TEST(StoreCache, FrequencyAwarePoliciesResistScansAndBeatLruOnZipf) {
  // A hot set of 50 rows accessed repeatedly, interrupted by one long scan of fresh rows.
  std::vector<std::int64_t> stream;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) stream.push_back(static_cast<std::int64_t>(rng() % 50));
  for (int i = 0; i < 5000; ++i) stream.push_back(1000 + i);
  for (int i = 0; i < 2000; ++i) stream.push_back(static_cast<std::int64_t>(rng() % 50));
  const std::size_t tail = 2000;
  auto tail_hits = [&](Policy p) {
    auto cache = make_policy(p, 100);
    std::int64_t hits = 0, evicted;
    for (std::size_t i = 0; i < stream.size(); ++i) {
      const bool hit = cache->lookup(stream[i]) >= 0;
      if (!hit) cache->admit(stream[i], &evicted);
      if (i >= stream.size() - tail) hits += hit;
    }
    return hits;
  };
  EXPECT_LE(tail_hits(Policy::lru), 1950);  // the scan flushed the hot set: each of the 50 misses again
  EXPECT_GT(tail_hits(Policy::s3fifo), 1990);
  EXPECT_GT(tail_hits(Policy::tinylfu), 1990);

  const auto z = zipf(100000, 1.0, 400000, 5);
  const double lru = simulate(Policy::lru, 2000, z.data(), z.size()).hit_ratio();
  EXPECT_GT(simulate(Policy::s3fifo, 2000, z.data(), z.size()).hit_ratio(), lru);
  EXPECT_GT(simulate(Policy::tinylfu, 2000, z.data(), z.size()).hit_ratio(), lru);
  // The oracle hot set of the same size bounds every static set.
  const auto oracle = hottest_rows(z.data(), z.size(), 2000);
  EXPECT_GT(simulate_static(oracle, z.data(), z.size()).hit_ratio(), lru);
}

TEST(StoreCache, HottestRowsAreDeterministicWithTiesBySmallerId) {
  const std::vector<std::int64_t> stream = {5, 3, 5, 9, 3, 7, 5, 1, 9};
  EXPECT_EQ(hottest_rows(stream.data(), stream.size(), 10), (std::vector<std::int64_t>{5, 3, 9, 1, 7}));
  EXPECT_EQ(hottest_rows(stream.data(), stream.size(), 2), (std::vector<std::int64_t>{5, 3}));
  EXPECT_TRUE(hottest_rows(stream.data(), stream.size(), 0).empty());
  const std::vector<std::int64_t> hot = {5, 3};
  EXPECT_EQ(simulate_static(hot, stream.data(), stream.size()).hits, 5);
  // Tiered = static set first, then the dynamic cache for the rest.
  const SimResult t = simulate_tiered(hot, Policy::lru, 1, stream.data(), stream.size());
  EXPECT_EQ(t.accesses, 9);
  EXPECT_EQ(t.hits, 5);  // 9, 7, 1, 9 through a 1-row LRU: no dynamic hit
}

}  // namespace
}  // namespace hashmem::store
