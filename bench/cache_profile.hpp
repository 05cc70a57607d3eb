// The row-frequency profile of a training trace, sort-based and compact, for `hashmem bench cache`: rows and
// their access counts as two uint32 arrays (8 B per distinct row; a 20 M-token trace has ~0.3 G of them), and the
// rank of given rows in the profile's order (most frequent first, ties: smaller row id first — the order of
// store::hottest_rows) without materialising that order.
//
// Threads: one; reentrant. Ownership: plain values; make_profile consumes the trace it is given.
#pragma once

#include <cstdint>
#include <vector>

namespace hashmem::bench {

struct RowProfile {
  std::vector<std::uint32_t> rows;    // distinct rows, ascending
  std::vector<std::uint32_t> counts;  // accesses of rows[i]
  std::int64_t distinct() const { return static_cast<std::int64_t>(rows.size()); }
};

// Sorts `accesses` in place and counts runs; the vector's memory is released before returning.
// Throws Error if a row is accessed 2^32 times or more.
RowProfile make_profile(std::vector<std::uint32_t>&& accesses);

// Ranks in the profile's order of `rows` (ascending, distinct; throws Error otherwise): ranks[i] = the number of
// profile rows that come before rows[i], or `absent_rank` when the profile never saw it. O(profile + rows).
inline constexpr std::int64_t absent_rank = INT64_MAX;
std::vector<std::int64_t> profile_ranks(const RowProfile& profile, const std::vector<std::uint32_t>& rows);

// The distinct rows of `stream` ascending, and how often each occurs.
struct DistinctRows {
  std::vector<std::uint32_t> rows;
  std::vector<std::uint32_t> counts;
};
DistinctRows distinct_rows(const std::int64_t* stream, std::size_t n);

}  // namespace hashmem::bench
