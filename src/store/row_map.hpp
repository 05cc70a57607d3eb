// RowMap: an open-addressing map from a row id (>= 0) to an int64 value, with linear probing, load <= 1/2 and
// backward-shift deletion (no tombstones), so lookups on the gather path cost about one cache miss.
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
      if (keys_[i] == key) return values_[i];
      if (keys_[i] < 0) return -1;
    }
  }
  void set(std::int64_t key, std::int64_t value) {
    if (2 * (size_ + 1) > keys_.size()) grow();
    std::size_t i = slot(key);
    for (; keys_[i] >= 0 && keys_[i] != key; i = (i + 1) & mask_) {
    }
    if (keys_[i] < 0) ++size_;
    keys_[i] = key;
    values_[i] = value;
  }
  void erase(std::int64_t key) {
    std::size_t i = slot(key);
    for (; keys_[i] != key; i = (i + 1) & mask_) {
      if (keys_[i] < 0) return;
    }
    // Backward shift: move later entries of the probe run into the hole when their home allows it.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; keys_[j] >= 0; j = (j + 1) & mask_) {
      const std::size_t home = slot(keys_[j]);
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        keys_[hole] = keys_[j];
        values_[hole] = values_[j];
        hole = j;
      }
    }
    keys_[hole] = -1;
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
    keys_.assign(capacity, -1);
    values_.assign(capacity, 0);
    mask_ = capacity - 1;
    shift_ = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }
  void grow() {
    std::vector<std::int64_t> keys = std::move(keys_), values = std::move(values_);
    rebuild(2 * keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] >= 0) set(keys[i], values[i]);
    }
  }

  std::vector<std::int64_t> keys_, values_;
  std::size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

}  // namespace hashmem::store
