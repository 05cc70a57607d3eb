// Argument checks and defaults shared by the attention methods, so every method words its errors the same way.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "hashmem/attention.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {

inline void check_dims(const Dims& d, const char* method) {
  auto positive = [&](std::int64_t value, const char* name) {
    if (value < 1 || value > (std::int64_t{1} << 30)) {
      throw Error(std::string(method) + ": dims." + name + " must be in [1, 2^30], got " + std::to_string(value));
    }
  };
  positive(d.heads, "heads");
  positive(d.queries, "queries");
  positive(d.keys, "keys");
  positive(d.dim, "dim");
  positive(d.value_dim, "value_dim");
}

// LSH and bucket attention are self-attention: one sequence of positions, each a query and a key.
inline void check_self_attention(const Dims& d, const char* method) {
  check_dims(d, method);
  if (d.queries != d.keys) {
    throw Error(std::string(method) + ": dims.queries (" + std::to_string(d.queries) + ") must equal dims.keys (" +
                std::to_string(d.keys) + ") for self-attention");
  }
}

inline void check_pointer(const void* p, const char* name, const char* method) {
  if (!p) throw Error(std::string(method) + ": " + name + " is null");
}

inline void check_rounds(int rounds, const char* method) {
  if (rounds < 1 || rounds > 64) {
    throw Error(std::string(method) + ": rounds must be in [1, 64], got " + std::to_string(rounds));
  }
}

inline float resolve_scale(double scale, std::int64_t dim) {
  return static_cast<float>(scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(dim)));
}

}  // namespace hashmem::attention
