// Cache policies against references: S3-FIFO step for step against a plain transcription of the paper's
// algorithm, pin counts, W-TinyLFU's aging, policy names, and the simulators (zipf_stream, hottest_rows against a
// counting reference, simulate_tiered = static set + policy on the rest). test_store_cache.cpp has LRU against a
// naive list, the slot invariants under random pins, capacity 0 and scan resistance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "hashmem/error.hpp"
#include "store/cache_policy.hpp"

namespace hashmem::store {
namespace {

constexpr Policy kAllPolicies[] = {Policy::lru, Policy::s3fifo, Policy::tinylfu};

// S3-FIFO as Algorithm 1 of Yang et al. (SOSP'23) writes it, over std::list (front = head, back = tail).
// Two points the paper leaves open follow docs/store.md ("Cache policies"): a row read at least once while in the small
// queue moves to main, and one insertion evicts one row (a promotion that overfills main evicts from main and
// ends the small queue's turn). The ghost is the window of the last |main| rows evicted from the small queue;
// a ghost hit takes the row out but not its place in the window (the authors' timestamped ghost).
class NaiveS3Fifo {
 public:
  explicit NaiveS3Fifo(std::int64_t capacity)
      : capacity_(capacity), small_max_(std::max<std::int64_t>(1, capacity / 10)), main_max_(capacity - capacity / 10) {}

  // True on a hit; on a miss the row is inserted and *evicted is the row that made room, or −1.
  bool access(std::int64_t row, std::int64_t* evicted) {
    *evicted = -1;
    if (auto it = where_.find(row); it != where_.end()) {
      it->second->freq = std::min(it->second->freq + 1, 3);
      return true;
    }
    if (static_cast<std::int64_t>(small_.size() + main_.size()) == capacity_) *evicted = evict();
    auto ghost_entry = std::find(ghost_.begin(), ghost_.end(), row);
    const bool ghost_hit = ghost_entry != ghost_.end();
    if (ghost_hit) *ghost_entry = -1;
    std::list<Entry>& queue = ghost_hit ? main_ : small_;
    queue.push_front({row, 0});
    where_[row] = queue.begin();
    return false;
  }

 private:
  struct Entry {
    std::int64_t row;
    int freq;
  };

  std::int64_t evict() {
    if (static_cast<std::int64_t>(small_.size()) >= small_max_) {
      const std::int64_t e = evict_small();
      if (e >= 0) return e;
    }
    return evict_main();
  }
  std::int64_t evict_small() {
    while (!small_.empty()) {
      Entry& tail = small_.back();
      if (tail.freq >= 1) {
        tail.freq = 0;
        main_.splice(main_.begin(), small_, std::prev(small_.end()));
        if (static_cast<std::int64_t>(main_.size()) > main_max_) return evict_main();
      } else {
        const std::int64_t row = tail.row;
        where_.erase(row);
        small_.pop_back();
        ghost_.push_back(row);
        if (static_cast<std::int64_t>(ghost_.size()) > main_max_) ghost_.pop_front();
        return row;
      }
    }
    return -1;
  }
  std::int64_t evict_main() {
    for (;;) {
      Entry& tail = main_.back();
      if (tail.freq > 0) {
        --tail.freq;
        main_.splice(main_.begin(), main_, std::prev(main_.end()));
      } else {
        const std::int64_t row = tail.row;
        where_.erase(row);
        main_.pop_back();
        return row;
      }
    }
  }

  std::int64_t capacity_, small_max_, main_max_;
  std::list<Entry> small_, main_;
  std::deque<std::int64_t> ghost_;
  std::unordered_map<std::int64_t, std::list<Entry>::iterator> where_;
};

TEST(CachePolicy, S3FifoMatchesThePapersAlgorithmStepForStep) {
  for (double alpha : {0.6, 1.0}) {
    for (std::int64_t capacity : {1, 2, 3, 10, 11, 57, 200}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha) + " capacity " + std::to_string(capacity));
      std::vector<std::int64_t> stream = zipf_stream(alpha, 2000, 20000, static_cast<std::uint64_t>(capacity));
      // A one-time scan in the middle sends rows through the small queue and the ghost.
      for (std::int64_t r = 0; r < 3 * capacity; ++r) stream.insert(stream.begin() + 10000, 5000 + r);
      auto cache = make_policy(Policy::s3fifo, capacity);
      NaiveS3Fifo naive(capacity);
      std::int64_t hits = 0;
      for (std::size_t i = 0; i < stream.size(); ++i) {
        std::int64_t naive_evicted, evicted = -1;
        const bool naive_hit = naive.access(stream[i], &naive_evicted);
        const bool hit = cache->lookup(stream[i]) >= 0;
        ASSERT_EQ(hit, naive_hit) << "access " << i << " row " << stream[i];
        if (!hit) {
          ASSERT_GE(cache->admit(stream[i], &evicted), 0);
        }
        ASSERT_EQ(evicted, naive_evicted) << "access " << i;
        hits += hit;
      }
      EXPECT_GT(hits, 0);
    }
  }
}

TEST(CachePolicy, PinnedSlotsAreNeverEvictedAndAllPinnedRefusesAdmission) {
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(policy_name(p));
    auto cache = make_policy(p, 8);
    std::map<std::int64_t, std::int64_t> slot_of;  // the rows 0..7 that fill the cache
    std::int64_t evicted;
    for (std::int64_t row = 0; row < 8; ++row) {
      ASSERT_EQ(cache->lookup(row), -1);
      slot_of[row] = cache->admit(row, &evicted);
      ASSERT_GE(slot_of[row], 0);
      ASSERT_EQ(evicted, -1);  // free slots first
    }
    // Rows 0..3 pinned; 0 and 1 twice, so one unpin leaves them pinned.
    for (std::int64_t row = 0; row < 4; ++row) cache->pin(slot_of[row]);
    cache->pin(slot_of[0]);
    cache->pin(slot_of[1]);
    auto churn = [&](std::int64_t first_row) {
      for (std::int64_t i = 0; i < 3000; ++i) {
        const std::int64_t row = first_row + (i * 7) % 40;
        if (cache->lookup(row) >= 0) continue;
        const std::int64_t slot = cache->admit(row, &evicted);
        ASSERT_GE(slot, 0) << "four slots are unpinned";
        for (std::int64_t pinned = 0; pinned < 4; ++pinned) {
          ASSERT_NE(evicted, pinned);
          ASSERT_NE(slot, slot_of[pinned]);
        }
      }
    };
    churn(100);
    cache->unpin(slot_of[0]);
    cache->unpin(slot_of[1]);
    churn(200);
    for (std::int64_t row = 0; row < 4; ++row) EXPECT_EQ(cache->lookup(row), slot_of[row]) << row;

    // Pin everything: admission is refused and nothing changes.
    std::map<std::int64_t, std::int64_t> live;  // slot → row
    for (std::int64_t row = 0; row < 1000; ++row) {
      const std::int64_t slot = cache->lookup(row);
      if (slot >= 0) live[slot] = row;
    }
    ASSERT_EQ(static_cast<std::int64_t>(live.size()), cache->size());
    ASSERT_EQ(cache->size(), 8);
    for (const auto& [slot, row] : live) {
      if (row >= 4) cache->pin(slot);
    }
    evicted = 12345;
    EXPECT_EQ(cache->admit(9999, &evicted), -1);
    EXPECT_EQ(evicted, -1);
    EXPECT_EQ(cache->size(), 8);
    for (const auto& [slot, row] : live) EXPECT_EQ(cache->lookup(row), slot);

    // Release one slot completely: the next admission takes exactly that slot.
    cache->unpin(slot_of[2]);
    EXPECT_EQ(cache->admit(9999, &evicted), slot_of[2]);
    EXPECT_EQ(evicted, 2);
    EXPECT_EQ(cache->lookup(9999), slot_of[2]);
    EXPECT_EQ(cache->lookup(2), -1);
  }
}

// However the rows are spread over a policy's queues, one unpinned slot is enough: admit() evicts exactly it.
// (S3-FIFO must then look past the queue it would normally evict from.)
TEST(CachePolicy, OneUnpinnedSlotIsEnoughToAdmit) {
  for (Policy p : kAllPolicies) {
    for (std::int64_t capacity : {2, 20, 40}) {
      SCOPED_TRACE(std::string(policy_name(p)) + " capacity " + std::to_string(capacity));
      auto cache = make_policy(p, capacity);
      std::map<std::int64_t, std::int64_t> row_of;  // slot → row
      std::mt19937_64 rng(static_cast<std::uint64_t>(capacity));
      const auto stream = zipf_stream(0.9, 300, 20000, static_cast<std::uint64_t>(capacity));
      std::int64_t evicted, fresh = 1000;
      for (std::size_t i = 0; i < stream.size(); ++i) {
        if (cache->lookup(stream[i]) < 0) {
          const std::int64_t slot = cache->admit(stream[i], &evicted);
          ASSERT_GE(slot, 0);
          row_of[slot] = stream[i];
        }
        if (i % 61 != 60 || cache->size() < capacity) continue;
        auto keep = row_of.begin();
        std::advance(keep, static_cast<long>(rng() % row_of.size()));
        for (const auto& [slot, row] : row_of) {
          if (slot != keep->first) cache->pin(slot);
        }
        ASSERT_EQ(cache->admit(fresh, &evicted), keep->first) << "access " << i;
        ASSERT_EQ(evicted, keep->second);
        keep->second = fresh++;
        for (const auto& [slot, row] : row_of) {
          if (slot != keep->first) cache->unpin(slot);
        }
      }
    }
  }
}

// After the popular rows change, every policy ends up holding the new ones. For W-TinyLFU this needs the
// sketch's halving: without it the old rows' saturated counters would refuse every new row forever.
TEST(CachePolicy, EveryPolicyAdoptsANewHotSet) {
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(policy_name(p));
    auto cache = make_policy(p, 100);
    std::mt19937_64 rng(9);
    std::int64_t evicted, late_hits = 0;
    for (int phase = 0; phase < 2; ++phase) {
      for (int i = 0; i < 30000; ++i) {
        const std::int64_t row = 1000 * phase + static_cast<std::int64_t>(rng() % 80);
        const bool hit = cache->lookup(row) >= 0;
        if (!hit) cache->admit(row, &evicted);
        if (phase == 1 && i >= 20000) late_hits += hit;
      }
    }
    EXPECT_GT(late_hits, 9500);  // of 10000
  }
}

TEST(CachePolicy, ParsePolicyKnowsThreeNamesAndNamesThemOnError) {
  for (Policy p : kAllPolicies) EXPECT_EQ(parse_policy(policy_name(p)), p);
  try {
    parse_policy("lfu");
    FAIL() << "parse_policy accepted 'lfu'";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'lfu'"), std::string::npos) << message;
    EXPECT_NE(message.find("lru, s3fifo, tinylfu"), std::string::npos) << message;
  }
  EXPECT_THROW(parse_policy(""), Error);
  EXPECT_THROW(parse_policy("LRU"), Error);
}

TEST(CacheSim, ZipfStreamIsDeterministicAndSkewed) {
  const auto a = zipf_stream(1.1, 1000, 50000, 1);
  EXPECT_EQ(a, zipf_stream(1.1, 1000, 50000, 1));
  EXPECT_NE(a, zipf_stream(1.1, 1000, 50000, 2));
  std::map<std::int64_t, std::int64_t> count;
  for (std::int64_t r : a) {
    ASSERT_GE(r, 0);
    ASSERT_LT(r, 1000);
    ++count[r];
  }
  // The hottest row's share is 1 / Σ (k+1)^−1.1 ≈ 0.1543 for 1000 ranks.
  double harmonic = 0;
  for (int k = 1; k <= 1000; ++k) harmonic += std::pow(k, -1.1);
  std::int64_t top = 0;
  for (const auto& [row, c] : count) top = std::max(top, c);
  EXPECT_NEAR(static_cast<double>(top) / 50000.0, 1.0 / harmonic, 0.01);
  // alpha 0: uniform.
  count.clear();
  for (std::int64_t r : zipf_stream(0.0, 10, 10000, 3)) ++count[r];
  for (const auto& [row, c] : count) EXPECT_NEAR(c, 1000, 150) << row;
  EXPECT_THROW(zipf_stream(1.0, 0, 10, 1), Error);
  EXPECT_THROW(zipf_stream(-1.0, 10, 10, 1), Error);
}

TEST(CacheSim, HottestRowsMatchesACountingReference) {
  std::mt19937_64 rng(4);
  std::vector<std::int64_t> stream(5000);
  for (auto& r : stream) r = static_cast<std::int64_t>(rng() % 300) * 13;  // many ties
  std::map<std::int64_t, std::int64_t> count;
  for (std::int64_t r : stream) ++count[r];
  std::vector<std::pair<std::int64_t, std::int64_t>> ranked;  // (−count, row)
  for (const auto& [row, c] : count) ranked.emplace_back(-c, row);
  std::sort(ranked.begin(), ranked.end());
  for (std::int64_t k : {0, 1, 17, 299, 300, 1000}) {
    std::vector<std::int64_t> expected;
    for (std::size_t i = 0; i < ranked.size() && static_cast<std::int64_t>(i) < k; ++i) expected.push_back(ranked[i].second);
    EXPECT_EQ(hottest_rows(stream.data(), stream.size(), k), expected) << k;
  }
  EXPECT_TRUE(hottest_rows(stream.data(), stream.size(), -1).empty());
  EXPECT_TRUE(hottest_rows(nullptr, 0, 5).empty());
}

// simulate_tiered = the static set's hits + the policy's hits on the accesses the static set does not serve.
TEST(CacheSim, TieredIsTheStaticSetPlusThePolicyOnTheRest) {
  const auto stream = zipf_stream(1.0, 5000, 50000, 3);
  const auto hot = hottest_rows(stream.data(), stream.size(), 100);
  const std::set<std::int64_t> hot_set(hot.begin(), hot.end());
  std::vector<std::int64_t> rest;
  for (std::int64_t r : stream) {
    if (!hot_set.count(r)) rest.push_back(r);
  }
  const SimResult static_only = simulate_static(hot, stream.data(), stream.size());
  EXPECT_EQ(static_only.hits, static_cast<std::int64_t>(stream.size() - rest.size()));
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(policy_name(p));
    const SimResult tiered = simulate_tiered(hot, p, 200, stream.data(), stream.size());
    EXPECT_EQ(tiered.accesses, static_cast<std::int64_t>(stream.size()));
    EXPECT_EQ(tiered.hits, static_only.hits + simulate(p, 200, rest.data(), rest.size()).hits);
    const SimResult dynamic_only = simulate_tiered({}, p, 200, stream.data(), stream.size());
    EXPECT_EQ(dynamic_only.hits, simulate(p, 200, stream.data(), stream.size()).hits);
    EXPECT_EQ(simulate(p, 0, stream.data(), stream.size()).hits, 0);
  }
}

TEST(CacheSim, FrequencyAwarePoliciesBeatLruAndTheOracleBeatsThemAllOnZipf) {
  for (double alpha : {0.8, 1.2}) {
    const auto stream = zipf_stream(alpha, 20000, 200000, 8);
    for (std::int64_t capacity : {200, 1000}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha) + " capacity " + std::to_string(capacity));
      const double lru = simulate(Policy::lru, capacity, stream.data(), stream.size()).hit_ratio();
      const double s3fifo = simulate(Policy::s3fifo, capacity, stream.data(), stream.size()).hit_ratio();
      const double tinylfu = simulate(Policy::tinylfu, capacity, stream.data(), stream.size()).hit_ratio();
      const auto oracle_rows = hottest_rows(stream.data(), stream.size(), capacity);
      const double oracle = simulate_static(oracle_rows, stream.data(), stream.size()).hit_ratio();
      EXPECT_GT(s3fifo, lru + 0.01);
      EXPECT_GT(tinylfu, lru + 0.01);
      EXPECT_GT(oracle, std::max(s3fifo, tinylfu));
    }
  }
}

}  // namespace
}  // namespace hashmem::store
