// RowMap: an open-addressing map from a row id (>= 0) to an int64 value, with linear probing, load <= 1/2 and
// backward-shift deletion (no tombstones). Key and value share a 16-byte entry, so a lookup costs about one
// cache miss, and prefetch(key) lets a batch loop start that miss early.
// Not thread-safe; callers serialise writers. Keys must be >= 0.
#pragma once

#include <cstdint>
#include <vector>

namespace hashmem::store {

class RowMap {
 public:
  explicit RowMap(std::size_t expected = 0) { rebuild(capacity_for(expected)); }

  std::int64_t find(std::int64_t key) const {
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (e_[i].key == key) return e_[i].value;
      if (e_[i].key < 0) return -1;
    }
  }
  void prefetch(std::int64_t key) const { __builtin_prefetch(&e_[slot(key)]); }
  void set(std::int64_t key, std::int64_t value) {
    if (2 * (size_ + 1) > e_.size()) grow();
    std::size_t i = slot(key);
    for (; e_[i].key >= 0 && e_[i].key != key; i = (i + 1) & mask_) {
    }
    if (e_[i].key < 0) ++size_;
    e_[i] = {key, value};
  }
  void erase(std::int64_t key) {
    std::size_t i = slot(key);
    for (; e_[i].key != key; i = (i + 1) & mask_) {
      if (e_[i].key < 0) return;
    }
    // Backward shift: move later entries of the probe run into the hole when their home allows it.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; e_[j].key >= 0; j = (j + 1) & mask_) {
      const std::size_t home = slot(e_[j].key);
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        e_[hole] = e_[j];
        hole = j;
      }
    }
    e_[hole].key = -1;
    --size_;
  }
  std::size_t size() const { return size_; }

 private:
  static std::size_t capacity_for(std::size_t n) {
    std::size_t c = 16;
    while (c < 2 * n + 2) c <<= 1;
    return c;
  }
  std::size_t slot(std::int64_t key) const {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(key) * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  void rebuild(std::size_t capacity) {
    e_.assign(capacity, Entry{});
    mask_ = capacity - 1;
    shift_ = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }
  void grow() {
    std::vector<Entry> old = std::move(e_);
    rebuild(2 * old.size());
    for (const Entry& x : old) {
      if (x.key >= 0) set(x.key, x.value);
    }
  }

  struct Entry {
    std::int64_t key = -1, value = 0;
  };
  std::vector<Entry> e_;
  std::size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

}  // namespace hashmem::store
