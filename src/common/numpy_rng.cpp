#include "common/numpy_rng.hpp"

#include <array>

namespace hashmem {
namespace {

// numpy/random/bit_generator.pyx SeedSequence constants.
constexpr std::uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875, kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr std::uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kXShift = 16, kPoolSize = 4;

struct HashMix {
  std::uint32_t constant = kInitA;
  std::uint32_t operator()(std::uint32_t value) {
    value ^= constant;
    constant *= kMultA;
    value *= constant;
    value ^= value >> kXShift;
    return value;
  }
};

std::uint32_t mix(std::uint32_t x, std::uint32_t y) {
  std::uint32_t r = kMixMultL * x - kMixMultR * y;
  r ^= r >> kXShift;
  return r;
}

// SeedSequence(seed).generate_state(4, np.uint64)
std::array<std::uint64_t, 4> seed_sequence_state(unsigned __int128 seed) {
  std::vector<std::uint32_t> entropy;
  for (unsigned __int128 s = seed; s != 0; s >>= 32) entropy.push_back(static_cast<std::uint32_t>(s));
  if (entropy.empty()) entropy.push_back(0);
  HashMix hashmix;
  std::uint32_t pool[kPoolSize];
  for (int i = 0; i < kPoolSize; ++i) {
    pool[i] = hashmix(static_cast<std::size_t>(i) < entropy.size() ? entropy[static_cast<std::size_t>(i)] : 0);
  }
  for (int s = 0; s < kPoolSize; ++s) {
    for (int d = 0; d < kPoolSize; ++d) {
      if (s != d) pool[d] = mix(pool[d], hashmix(pool[s]));
    }
  }
  for (std::size_t s = kPoolSize; s < entropy.size(); ++s) {
    for (int d = 0; d < kPoolSize; ++d) pool[d] = mix(pool[d], hashmix(entropy[s]));
  }
  std::uint32_t hash_const = kInitB;
  std::uint32_t words[8];
  for (int i = 0; i < 8; ++i) {
    std::uint32_t v = pool[i % kPoolSize];
    v ^= hash_const;
    hash_const *= kMultB;
    v *= hash_const;
    v ^= v >> kXShift;
    words[i] = v;
  }
  std::array<std::uint64_t, 4> out;
  for (int i = 0; i < 4; ++i) out[i] = words[2 * i] | (static_cast<std::uint64_t>(words[2 * i + 1]) << 32);
  return out;
}

constexpr unsigned __int128 kPcgMultiplier =
    (static_cast<unsigned __int128>(2549297995355413924ull) << 64) | 4865540595714422341ull;

}  // namespace

Pcg64::Pcg64(unsigned __int128 seed) {
  const auto v = seed_sequence_state(seed);
  const unsigned __int128 initstate = (static_cast<unsigned __int128>(v[0]) << 64) | v[1];
  const unsigned __int128 initseq = (static_cast<unsigned __int128>(v[2]) << 64) | v[3];
  increment_ = (initseq << 1) | 1;
  state_ = 0;
  state_ = state_ * kPcgMultiplier + increment_;
  state_ += initstate;
  state_ = state_ * kPcgMultiplier + increment_;
}

std::uint64_t Pcg64::next64() {
  state_ = state_ * kPcgMultiplier + increment_;
  const std::uint64_t hi = static_cast<std::uint64_t>(state_ >> 64);
  const std::uint64_t x = hi ^ static_cast<std::uint64_t>(state_);
  const unsigned rot = static_cast<unsigned>(hi >> 58);
  return (x >> rot) | (x << ((64 - rot) & 63));
}

std::uint32_t Pcg64::next32() {
  if (has_uint32_) {
    has_uint32_ = false;
    return uinteger_;
  }
  const std::uint64_t next = next64();
  has_uint32_ = true;
  uinteger_ = static_cast<std::uint32_t>(next >> 32);
  return static_cast<std::uint32_t>(next);
}

std::vector<std::int64_t> numpy_integers(unsigned __int128 seed, std::int64_t low, std::int64_t high, std::size_t n) {
  Pcg64 rng(seed);
  std::vector<std::int64_t> out(n);
  const std::uint64_t range = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low) - 1;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t draw;
    if (range == 0) {
      draw = 0;
    } else if (range <= 0xffffffffull) {
      if (range == 0xffffffffull) {
        draw = rng.next32();
      } else {  // numpy buffered_bounded_lemire_uint32
        const std::uint32_t excl = static_cast<std::uint32_t>(range) + 1;
        std::uint64_t m = static_cast<std::uint64_t>(rng.next32()) * excl;
        std::uint32_t leftover = static_cast<std::uint32_t>(m);
        if (leftover < excl) {
          const std::uint32_t threshold = (0xffffffffu - static_cast<std::uint32_t>(range)) % excl;
          while (leftover < threshold) {
            m = static_cast<std::uint64_t>(rng.next32()) * excl;
            leftover = static_cast<std::uint32_t>(m);
          }
        }
        draw = m >> 32;
      }
    } else if (range == ~0ull) {
      draw = rng.next64();
    } else {  // numpy bounded_lemire_uint64
      const std::uint64_t excl = range + 1;
      unsigned __int128 m = static_cast<unsigned __int128>(rng.next64()) * excl;
      std::uint64_t leftover = static_cast<std::uint64_t>(m);
      if (leftover < excl) {
        const std::uint64_t threshold = (~0ull - range) % excl;
        while (leftover < threshold) {
          m = static_cast<unsigned __int128>(rng.next64()) * excl;
          leftover = static_cast<std::uint64_t>(m);
        }
      }
      draw = static_cast<std::uint64_t>(m >> 64);
    }
    out[i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + draw);
  }
  return out;
}

}  // namespace hashmem
