// MT19937, the 32-bit Mersenne Twister, with both seeding procedures the Python world uses:
//   seed(s)            == numpy legacy np.random.seed(s) == std::mt19937(s)   (init_genrand)
//   seed_by_array(key) == CPython random.seed(int) with key = 32-bit limbs of |int|   (init_by_array)
// Outputs are produced a block of 624 at a time (twist, then temper the whole block, which the compiler
// vectorises) so next() is a load and an increment. Not thread-safe; one generator per thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hashmem {

class Mt19937 {
 public:
  static constexpr int kN = 624;

  explicit Mt19937(std::uint32_t s = 5489u) { seed(s); }

  void seed(std::uint32_t s) {
    state_[0] = s;
    for (int i = 1; i < kN; ++i) {
      state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<std::uint32_t>(i);
    }
    index_ = kN;
  }

  void seed_by_array(const std::uint32_t* key, std::size_t key_length) {
    seed(19650218u);
    int i = 1;
    std::size_t j = 0;
    for (std::size_t k = key_length > kN ? key_length : kN; k > 0; --k) {
      state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] +
                  static_cast<std::uint32_t>(j);
      ++i;
      ++j;
      if (i >= kN) { state_[0] = state_[kN - 1]; i = 1; }
      if (j >= key_length) j = 0;
    }
    for (int k = kN - 1; k > 0; --k) {
      state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) -
                  static_cast<std::uint32_t>(i);
      ++i;
      if (i >= kN) { state_[0] = state_[kN - 1]; i = 1; }
    }
    state_[0] = 0x80000000u;
    index_ = kN;
  }

  std::uint32_t next() {
    if (index_ >= kN) refill();
    return output_[index_++];
  }

  // Number of outputs left in the current block, and direct access to them (for bulk consumers).
  int available() const { return kN - index_; }
  const std::uint32_t* block() const { return output_ + index_; }
  void consume(int n) { index_ += n; }
  void refill_if_empty() { if (index_ >= kN) refill(); }

 private:
  void refill() {
    constexpr std::uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrix = 0x9908b0dfu;
    int k = 0;
    for (; k < kN - 397; ++k) {
      std::uint32_t y = (state_[k] & kUpper) | (state_[k + 1] & kLower);
      state_[k] = state_[k + 397] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    }
    for (; k < kN - 1; ++k) {
      std::uint32_t y = (state_[k] & kUpper) | (state_[k + 1] & kLower);
      state_[k] = state_[k + 397 - kN] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    }
    std::uint32_t y = (state_[kN - 1] & kUpper) | (state_[0] & kLower);
    state_[kN - 1] = state_[396] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    for (int i = 0; i < kN; ++i) {
      std::uint32_t t = state_[i];
      t ^= t >> 11;
      t ^= (t << 7) & 0x9d2c5680u;
      t ^= (t << 15) & 0xefc60000u;
      t ^= t >> 18;
      output_[i] = t;
    }
    index_ = 0;
  }

  std::uint32_t state_[kN];
  std::uint32_t output_[kN];
  int index_ = kN;
};

}  // namespace hashmem
