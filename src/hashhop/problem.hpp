// Internal: the generated structure of one HashHop sample, before it is written out.
//
// All hashes live in one letter arena in the order the original draws them; the prompt's lines are
// "entries" (key hash, value hash) of the per-level dicts, concatenated level by level in dict order.
// link[e] maps an entry of level l to the entry of level l+1 keyed by its value, so chains are followed
// without any lookup when the prompt and targets are written. `order` is the shuffled line order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/huge_pages.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::hashhop {

struct Problem {
  Params params;
  int hash_length = 0;
  std::int64_t chains = 0;
  HugeVector<char> letters;                // hash h = letters[h·L, (h+1)·L)
  HugeVector<std::uint32_t> keys, values;  // per entry: hash numbers
  HugeVector<std::uint32_t> link;          // per entry not in the last level
  HugeVector<std::uint32_t> order;         // line i of the prompt is entry order[i]
  std::vector<std::uint64_t> level_begin;         // entries of level l: [level_begin[l], level_begin[l+1])

  std::uint64_t num_entries() const { return level_begin.back(); }
  std::uint64_t num_targets() const { return level_begin[1]; }
  std::uint64_t last_level_begin() const { return level_begin[level_begin.size() - 2]; }
  const char* hash(std::uint32_t h) const { return letters.data() + static_cast<std::size_t>(h) * hash_length; }
  // The entry of the last level reached from level-0 entry `target` (follows `hops - 1` links).
  std::uint32_t last_entry(std::uint32_t target) const {
    std::uint32_t e = target;
    for (std::int64_t l = 1; l < params.hops; ++l) e = link[e];
    return e;
  }
};

// Draws every hash and shuffles the lines exactly as the original. Throws Error on invalid params.
Problem build_problem(const Params& params, Progress* progress);

}  // namespace hashmem::hashhop
