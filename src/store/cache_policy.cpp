#include "store/cache_policy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "common/huge_pages.hpp"
#include "hashmem/error.hpp"
#include "store/row_map.hpp"

namespace hashmem::store {

Policy parse_policy(const std::string& name) {
  if (name == "lru") return Policy::lru;
  if (name == "s3fifo") return Policy::s3fifo;
  if (name == "tinylfu") return Policy::tinylfu;
  throw Error("unknown cache policy '" + name + "' (known: lru, s3fifo, tinylfu)");
}

const char* policy_name(Policy policy) {
  switch (policy) {
    case Policy::lru: return "lru";
    case Policy::s3fifo: return "s3fifo";
    case Policy::tinylfu: return "tinylfu";
  }
  return "?";
}

namespace {

// Doubly linked lists threaded through the slots: every slot is on at most one list (queue) at a time. A slot's
// links and list number share one node, so moving a slot touches one line per slot involved.
class SlotLists {
 public:
  SlotLists(std::int64_t slots, int lists)
      : nodes_(static_cast<std::size_t>(slots)), head_(lists, -1), tail_(lists, -1), size_(lists, 0) {}

  void push_front(int l, std::int64_t s) {
    Node& n = node(s);
    n.prev = -1;
    n.next = head_[l];
    if (head_[l] >= 0) node(head_[l]).prev = s;
    head_[l] = s;
    if (tail_[l] < 0) tail_[l] = s;
    n.list = l;
    ++size_[l];
  }
  void remove(std::int64_t s) {
    Node& n = node(s);
    const int l = n.list;
    if (n.prev >= 0) node(n.prev).next = n.next; else head_[l] = n.next;
    if (n.next >= 0) node(n.next).prev = n.prev; else tail_[l] = n.prev;
    n.list = -1;
    --size_[l];
  }
  void move_front(int l, std::int64_t s) {
    remove(s);
    push_front(l, s);
  }
  int list_of(std::int64_t s) const { return node(s).list; }
  std::int64_t tail(int l) const { return tail_[l]; }
  std::int64_t prev(std::int64_t s) const { return node(s).prev; }
  std::int64_t size(int l) const { return size_[l]; }

 private:
  struct Node {
    std::int64_t prev = -1, next = -1;
    int list = -1;
  };
  Node& node(std::int64_t s) { return nodes_[static_cast<std::size_t>(s)]; }
  const Node& node(std::int64_t s) const { return nodes_[static_cast<std::size_t>(s)]; }

  HugeVector<Node> nodes_;
  std::vector<std::int64_t> head_, tail_, size_;
};

// What every policy shares: the row ↔ slot maps, free slots, pin counts.
class SlotTable {
 public:
  explicit SlotTable(std::int64_t capacity)
      : capacity_(capacity), map_(static_cast<std::size_t>(capacity)), row_(static_cast<std::size_t>(capacity), -1),
        pins_(static_cast<std::size_t>(capacity), 0) {
    for (std::int64_t s = capacity; s-- > 0;) free_.push_back(s);
  }
  std::int64_t find(std::int64_t row) const { return map_.find(row); }
  void prefetch(std::int64_t row) const { map_.prefetch(row); }
  bool pinned(std::int64_t s) const { return pins_[static_cast<std::size_t>(s)] > 0; }
  void pin(std::int64_t s) { ++pins_[static_cast<std::size_t>(s)]; }
  void unpin(std::int64_t s) { --pins_[static_cast<std::size_t>(s)]; }
  bool has_free() const { return !free_.empty(); }
  std::int64_t take(std::int64_t row) {
    const std::int64_t s = free_.back();
    free_.pop_back();
    row_[static_cast<std::size_t>(s)] = row;
    map_.set(row, s);
    return s;
  }
  // Frees slot s; returns the row it held.
  std::int64_t release(std::int64_t s) {
    const std::int64_t row = row_[static_cast<std::size_t>(s)];
    map_.erase(row);
    row_[static_cast<std::size_t>(s)] = -1;
    free_.push_back(s);
    return row;
  }
  std::int64_t row(std::int64_t s) const { return row_[static_cast<std::size_t>(s)]; }
  void rekey(std::int64_t s, std::int64_t row) {
    map_.erase(row_[static_cast<std::size_t>(s)]);
    row_[static_cast<std::size_t>(s)] = row;
    map_.set(row, s);
  }
  std::int64_t capacity() const { return capacity_; }
  std::int64_t size() const { return capacity_ - static_cast<std::int64_t>(free_.size()); }

 private:
  std::int64_t capacity_;
  RowMap map_;
  HugeVector<std::int64_t> row_;
  HugeVector<std::int32_t> pins_;
  std::vector<std::int64_t> free_;
};

// The unpinned slot nearest the tail of list l (looking at no more than the list's size), or −1.
std::int64_t unpinned_tail(const SlotLists& lists, const SlotTable& slots, int l) {
  for (std::int64_t s = lists.tail(l), seen = 0; s >= 0 && seen < lists.size(l); s = lists.prev(s), ++seen) {
    if (!slots.pinned(s)) return s;
  }
  return -1;
}

// What the three policies share: their slots, and the calls that only concern the slots.
class SlottedPolicy : public CachePolicy {
 public:
  explicit SlottedPolicy(std::int64_t capacity) : slots_(capacity) {}
  void prefetch(std::int64_t row) const override { slots_.prefetch(row); }
  void pin(std::int64_t s) override { slots_.pin(s); }
  void unpin(std::int64_t s) override { slots_.unpin(s); }
  void replace(std::int64_t s, std::int64_t row) override { slots_.rekey(s, row); }
  std::int64_t capacity() const override { return slots_.capacity(); }
  std::int64_t size() const override { return slots_.size(); }

 protected:
  SlotTable slots_;
};

class Lru final : public SlottedPolicy {
 public:
  explicit Lru(std::int64_t capacity) : SlottedPolicy(capacity), lists_(capacity, 1) {}
  std::int64_t lookup(std::int64_t row) override {
    const std::int64_t s = slots_.find(row);
    if (s >= 0) lists_.move_front(0, s);
    return s;
  }
  std::int64_t admit(std::int64_t row, std::int64_t* evicted) override {
    *evicted = -1;
    if (slots_.capacity() == 0) return -1;
    if (!slots_.has_free()) {
      const std::int64_t victim = unpinned_tail(lists_, slots_, 0);
      if (victim < 0) return -1;
      lists_.remove(victim);
      *evicted = slots_.release(victim);
    }
    const std::int64_t s = slots_.take(row);
    lists_.push_front(0, s);
    return s;
  }

 private:
  SlotLists lists_;
};

// The ghost FIFO of S3-FIFO: the last `capacity` rows evicted from the small queue (ids only).
class Ghost {
 public:
  explicit Ghost(std::int64_t capacity) : ring_(static_cast<std::size_t>(std::max<std::int64_t>(capacity, 1)), -1) {}
  bool contains(std::int64_t row) const {
    const std::int64_t at = seq_.find(row);
    return at >= 0 && next_ - at <= static_cast<std::int64_t>(ring_.size());
  }
  void add(std::int64_t row) {
    const std::size_t i = static_cast<std::size_t>(next_ % static_cast<std::int64_t>(ring_.size()));
    const std::int64_t old = ring_[i];
    if (old >= 0 && seq_.find(old) == next_ - static_cast<std::int64_t>(ring_.size())) seq_.erase(old);
    ring_[i] = row;
    seq_.set(row, next_++);
  }
  void erase(std::int64_t row) { seq_.erase(row); }

 private:
  std::vector<std::int64_t> ring_;
  RowMap seq_;
  std::int64_t next_ = 0;
};

class S3Fifo final : public SlottedPolicy {
 public:
  explicit S3Fifo(std::int64_t capacity)
      : SlottedPolicy(capacity), lists_(capacity, 2), freq_(static_cast<std::size_t>(capacity), 0),
        small_target_(std::max<std::int64_t>(1, capacity / 10)), main_target_(capacity - capacity / 10),
        ghost_(capacity - capacity / 10) {}
  std::int64_t lookup(std::int64_t row) override {
    const std::int64_t s = slots_.find(row);
    if (s >= 0 && freq_[static_cast<std::size_t>(s)] < 3) ++freq_[static_cast<std::size_t>(s)];
    return s;
  }
  std::int64_t admit(std::int64_t row, std::int64_t* evicted) override {
    *evicted = -1;
    if (slots_.capacity() == 0) return -1;
    while (!slots_.has_free()) {
      const std::int64_t e = evict();
      if (e == kNone) return -1;  // every candidate is pinned
      if (e >= 0) *evicted = e;
    }
    const bool ghost = ghost_.contains(row);
    if (ghost) ghost_.erase(row);
    const std::int64_t s = slots_.take(row);
    freq_[static_cast<std::size_t>(s)] = 0;
    lists_.push_front(ghost ? kMain : kSmall, s);
    return s;
  }

 private:
  static constexpr int kSmall = 0, kMain = 1;
  static constexpr std::int64_t kNone = -2;

  // Frees one slot; returns the row evicted, or kNone if nothing could be (all pinned). The queue the paper
  // names first; the other one when every candidate there is pinned (or, for the small queue, promoted).
  std::int64_t evict() {
    const bool small_first = lists_.size(kSmall) >= small_target_ || lists_.size(kMain) == 0;
    const std::int64_t e = small_first ? evict_small() : evict_main();
    if (e != kNone) return e;
    return small_first ? evict_main() : evict_small();
  }
  std::int64_t evict_small() {
    for (std::int64_t tries = lists_.size(kSmall); tries > 0 && lists_.size(kSmall) > 0; --tries) {
      const std::int64_t t = lists_.tail(kSmall);
      const auto i = static_cast<std::size_t>(t);
      if (slots_.pinned(t)) {
        lists_.move_front(kSmall, t);  // in use: look at it again later
        continue;
      }
      if (freq_[i] >= 1) {  // accessed while in the small queue: promote
        freq_[i] = 0;
        lists_.move_front(kMain, t);
        if (lists_.size(kMain) > main_target_) {
          const std::int64_t e = evict_main();
          if (e != kNone) return e;
        }
        continue;
      }
      lists_.remove(t);
      const std::int64_t row = slots_.release(t);
      ghost_.add(row);
      return row;
    }
    return kNone;
  }
  std::int64_t evict_main() {
    // Each visit either evicts, or decrements a frequency (<= 3), or skips a pinned slot: bounded.
    for (std::int64_t tries = 4 * lists_.size(kMain) + 1; tries > 0 && lists_.size(kMain) > 0; --tries) {
      const std::int64_t t = lists_.tail(kMain);
      const auto i = static_cast<std::size_t>(t);
      if (slots_.pinned(t)) {
        lists_.move_front(kMain, t);
        continue;
      }
      if (freq_[i] > 0) {
        --freq_[i];
        lists_.move_front(kMain, t);
        continue;
      }
      lists_.remove(t);
      return slots_.release(t);
    }
    return kNone;
  }

  SlotLists lists_;
  std::vector<std::uint8_t> freq_;
  std::int64_t small_target_, main_target_;
  Ghost ghost_;
};

// Count-min sketch of depth 4 with 4-bit counters (one byte each, capped at 15), halved once 10·capacity
// increments have been counted ("aging"). A row's 4 counters lie in one 64-byte block, one per 16-byte quarter
// (Caffeine's layout), so an increment or an estimate costs one cache miss. Each depth has >= 4·capacity
// counters, as many as Caffeine's; with 1·capacity Zipf hit ratios drop by up to 0.015.
class FrequencySketch {
 public:
  explicit FrequencySketch(std::int64_t capacity) {
    std::size_t blocks = 1;
    while (static_cast<std::int64_t>(blocks * kPerDepth) < 4 * capacity) blocks <<= 1;
    block_mask_ = blocks - 1;
    counters_.assign(blocks * kBlockBytes, 0);
    sample_ = std::max<std::int64_t>(10 * capacity, 16);
  }
  void increment(std::int64_t row) {
    const std::uint64_t h = hash(row);
    std::uint8_t* block = &counters_[block_of(h)];
    for (int d = 0; d < 4; ++d) {
      std::uint8_t& c = block[counter_of(h, d)];
      if (c < 15) ++c;
    }
    if (++additions_ >= sample_) {
      for (auto& c : counters_) c >>= 1;
      additions_ /= 2;
    }
  }
  int estimate(std::int64_t row) const {
    const std::uint64_t h = hash(row);
    const std::uint8_t* block = &counters_[block_of(h)];
    int m = 15;
    for (int d = 0; d < 4; ++d) m = std::min<int>(m, block[counter_of(h, d)]);
    return m;
  }

 private:
  static constexpr std::size_t kBlockBytes = 64, kPerDepth = kBlockBytes / 4;
  static std::uint64_t hash(std::int64_t row) {  // splitmix64's finaliser: all 64 bits depend on every bit
    std::uint64_t z = static_cast<std::uint64_t>(row) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // The block from the high half of the hash, the counter of depth d from 4 bits of the low half.
  std::size_t block_of(std::uint64_t h) const { return static_cast<std::size_t>((h >> 32) & block_mask_) * kBlockBytes; }
  static std::size_t counter_of(std::uint64_t h, int d) {
    return static_cast<std::size_t>(d) * kPerDepth + static_cast<std::size_t>((h >> (4 * d)) & (kPerDepth - 1));
  }
  HugeVector<std::uint8_t> counters_;
  std::size_t block_mask_ = 0;
  std::int64_t additions_ = 0, sample_ = 0;
};

class TinyLfu final : public SlottedPolicy {
 public:
  explicit TinyLfu(std::int64_t capacity)
      : SlottedPolicy(capacity), lists_(capacity, 3), sketch_(capacity),
        window_target_(std::max<std::int64_t>(1, capacity / 100)),
        protected_target_((capacity - std::max<std::int64_t>(1, capacity / 100)) * 4 / 5) {}
  std::int64_t lookup(std::int64_t row) override {
    sketch_.increment(row);
    const std::int64_t s = slots_.find(row);
    if (s < 0) return -1;
    switch (lists_.list_of(s)) {
      case kWindow: lists_.move_front(kWindow, s); break;
      case kProtected: lists_.move_front(kProtected, s); break;
      default:  // probation → protected; the protected segment's oldest goes back to probation
        lists_.move_front(kProtected, s);
        if (lists_.size(kProtected) > protected_target_) lists_.move_front(kProbation, lists_.tail(kProtected));
    }
    return s;
  }
  std::int64_t admit(std::int64_t row, std::int64_t* evicted) override {
    *evicted = -1;
    if (slots_.capacity() == 0) return -1;
    if (!slots_.has_free()) {
      // The window's oldest (the candidate) against main's oldest probation row (the victim): the more
      // frequent one stays. With no candidate the victim goes; with no victim the candidate does.
      const std::int64_t candidate = unpinned_tail(lists_, slots_, kWindow);
      std::int64_t victim = unpinned_tail(lists_, slots_, kProbation);
      if (victim < 0) victim = unpinned_tail(lists_, slots_, kProtected);
      std::int64_t out;
      if (candidate < 0 && victim < 0) return -1;
      if (candidate < 0) {
        out = victim;
      } else if (victim < 0) {
        out = candidate;
      } else if (sketch_.estimate(slots_.row(candidate)) > sketch_.estimate(slots_.row(victim))) {
        out = victim;
        lists_.move_front(kProbation, candidate);
      } else {
        out = candidate;
      }
      lists_.remove(out);
      *evicted = slots_.release(out);
    }
    const std::int64_t s = slots_.take(row);
    lists_.push_front(kWindow, s);
    // Keep the window at its size while main has room (before the cache fills up).
    if (lists_.size(kWindow) > window_target_ && slots_.has_free()) lists_.move_front(kProbation, lists_.tail(kWindow));
    return s;
  }

 private:
  static constexpr int kWindow = 0, kProbation = 1, kProtected = 2;
  SlotLists lists_;
  FrequencySketch sketch_;
  std::int64_t window_target_, protected_target_;
};

}  // namespace

std::unique_ptr<CachePolicy> make_policy(Policy policy, std::int64_t capacity) {
  if (capacity < 0) throw Error("cache capacity must be >= 0, got " + std::to_string(capacity));
  switch (policy) {
    case Policy::lru: return std::make_unique<Lru>(capacity);
    case Policy::s3fifo: return std::make_unique<S3Fifo>(capacity);
    case Policy::tinylfu: return std::make_unique<TinyLfu>(capacity);
  }
  throw Error("unknown cache policy");
}

SimResult simulate(Policy policy, std::int64_t capacity, const std::int64_t* stream, std::size_t n) {
  return simulate_tiered({}, policy, capacity, stream, n);
}

std::vector<std::int64_t> hottest_rows(const std::int64_t* stream, std::size_t n, std::int64_t k) {
  std::vector<std::int64_t> sorted(stream, stream + n);
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::pair<std::int64_t, std::int64_t>> counted;  // (−count, row): ascending = hottest first
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
    counted.emplace_back(-static_cast<std::int64_t>(j - i), sorted[i]);
    i = j;
  }
  const auto keep = static_cast<std::size_t>(std::clamp<std::int64_t>(k, 0, static_cast<std::int64_t>(counted.size())));
  std::partial_sort(counted.begin(), counted.begin() + static_cast<std::ptrdiff_t>(keep), counted.end());
  std::vector<std::int64_t> out(keep);
  for (std::size_t i = 0; i < keep; ++i) out[i] = counted[i].second;
  return out;
}

SimResult simulate_static(const std::vector<std::int64_t>& hot_rows, const std::int64_t* stream, std::size_t n) {
  RowMap hot(hot_rows.size());
  for (std::int64_t r : hot_rows) hot.set(r, 1);
  SimResult r;
  r.accesses = static_cast<std::int64_t>(n);
  for (std::size_t i = 0; i < n; ++i) r.hits += hot.find(stream[i]) >= 0;
  return r;
}

SimResult simulate_tiered(const std::vector<std::int64_t>& static_rows, Policy policy, std::int64_t dynamic_capacity,
                          const std::int64_t* stream, std::size_t n) {
  RowMap hot(static_rows.size());
  for (std::int64_t r : static_rows) hot.set(r, 1);
  const auto cache = make_policy(policy, dynamic_capacity);
  SimResult r;
  r.accesses = static_cast<std::int64_t>(n);
  std::int64_t evicted;
  constexpr std::size_t kAhead = 8;  // start the hash-map misses of a later access (the cache's own prefetch)
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      hot.prefetch(stream[i + kAhead]);
      cache->prefetch(stream[i + kAhead]);
    }
    if (hot.find(stream[i]) >= 0 || cache->lookup(stream[i]) >= 0) {
      ++r.hits;
    } else {
      cache->admit(stream[i], &evicted);
    }
  }
  return r;
}

std::vector<std::int64_t> zipf_stream(double alpha, std::int64_t rows, std::size_t n, std::uint64_t seed) {
  if (rows < 1) throw Error("zipf_stream: rows must be >= 1, got " + std::to_string(rows));
  if (!(alpha >= 0)) throw Error("zipf_stream: alpha must be >= 0, got " + std::to_string(alpha));
  std::vector<double> cdf(static_cast<std::size_t>(rows));
  double sum = 0;
  for (std::size_t r = 0; r < cdf.size(); ++r) cdf[r] = sum += std::pow(static_cast<double>(r + 1), -alpha);
  std::vector<std::int64_t> row_of_rank(static_cast<std::size_t>(rows));
  std::iota(row_of_rank.begin(), row_of_rank.end(), std::int64_t{0});
  std::mt19937_64 rng(seed);
  std::shuffle(row_of_rank.begin(), row_of_rank.end(), rng);
  std::uniform_real_distribution<double> u(0.0, sum);
  std::vector<std::int64_t> out(n);
  for (auto& row : out) {
    const auto rank = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
    row = row_of_rank[static_cast<std::size_t>(std::min<std::ptrdiff_t>(rank, rows - 1))];
  }
  return out;
}

}  // namespace hashmem::store
