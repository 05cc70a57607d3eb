// FlatIndex: an open-addressing hash index from a 64-bit fingerprint to a 32-bit value, where the value is a
// position in the caller's own arrays and the caller decides key equality. It is the one "key text →
// position" map of the project (HashHop dict semantics, the oracle's prompt memory, the scorer), kept flat
// (16-byte slots, linear probing, load <= 3/4) so lookups cost one cache miss and can be prefetched.
//
// Not thread-safe for writers; concurrent const lookups are fine. Values must be < kNone.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>
#include <xxhash.h>

#include "common/huge_pages.hpp"

namespace hashmem {

inline std::uint64_t text_fingerprint(std::string_view text) { return XXH3_64bits(text.data(), text.size()); }

class FlatIndex {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;

  explicit FlatIndex(std::uint64_t expected_size = 0) {
    std::uint64_t capacity = 64;
    while (capacity * 3 < expected_size * 4) capacity <<= 1;
    rebuild(capacity);
  }

  std::uint64_t size() const { return size_; }
  std::uint64_t bytes() const { return slots_.size() * sizeof(Slot); }  // the slot array

  void prefetch(std::uint64_t fp) const { __builtin_prefetch(&slots_[slot_of(fp)]); }

  // The value of the first slot whose fingerprint is fp, without checking equality (a prefetch hint for the
  // caller's key storage); kNone if there is none.
  std::uint32_t peek(std::uint64_t fp) const {
    for (std::uint64_t i = slot_of(fp);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kNone || s.fp == fp) return s.value;
    }
  }

  // The value whose key equals the probe (same(value) == true), or kNone.
  template <class Same>
  std::uint32_t find(std::uint64_t fp, Same&& same) const {
    for (std::uint64_t i = slot_of(fp);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kNone) return kNone;
      if (s.fp == fp && same(s.value)) return s.value;
    }
  }

  // Returns the value already stored for an equal key, or stores `value` and returns kNone.
  template <class Same>
  std::uint32_t find_or_insert(std::uint64_t fp, std::uint32_t value, Same&& same) {
    for (std::uint64_t i = slot_of(fp);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value == kNone) {
        s.fp = fp;
        s.value = value;
        if (++size_ * 4 > (mask_ + 1) * 3) rebuild((mask_ + 1) * 2);
        return kNone;
      }
      if (s.fp == fp && same(s.value)) return s.value;
    }
  }

 private:
  struct Slot {
    std::uint64_t fp;
    std::uint32_t value;
  };

  // Fibonacci hashing: the high bits of fp·φ spread both exact packed keys and xxh3 outputs.
  std::uint64_t slot_of(std::uint64_t fp) const { return (fp * 0x9E3779B97F4A7C15ull) >> shift_; }

  void rebuild(std::uint64_t capacity) {
    HugeVector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{0, kNone});
    mask_ = capacity - 1;
    shift_ = 64 - __builtin_ctzll(capacity);
    for (const Slot& s : old) {
      if (s.value == kNone) continue;
      std::uint64_t i = slot_of(s.fp);
      while (slots_[i].value != kNone) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  HugeVector<Slot> slots_;
  std::uint64_t mask_ = 0;
  int shift_ = 64;
  std::uint64_t size_ = 0;
};

}  // namespace hashmem
