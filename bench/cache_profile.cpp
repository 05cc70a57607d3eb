#include "cache_profile.hpp"

#include <algorithm>
#include <string>

#include "hashmem/error.hpp"

namespace hashmem::bench {
namespace {

// Run-length counts of a sorted vector, compacting it in place to its distinct values.
std::vector<std::uint32_t> count_runs(std::vector<std::uint32_t>& sorted) {
  std::vector<std::uint32_t> counts;
  std::size_t out = 0;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
    if (j - i > UINT32_MAX) throw Error("make_profile: row " + std::to_string(sorted[i]) + " occurs 2^32 times or more");
    sorted[out++] = sorted[i];
    counts.push_back(static_cast<std::uint32_t>(j - i));
    i = j;
  }
  sorted.resize(out);
  return counts;
}

}  // namespace

RowProfile make_profile(std::vector<std::uint32_t>&& accesses) {
  std::vector<std::uint32_t> trace = std::move(accesses);
  std::sort(trace.begin(), trace.end());
  RowProfile p;
  p.counts = count_runs(trace);
  p.rows.assign(trace.begin(), trace.end());  // a tight copy; the trace's memory goes with it
  return p;
}

std::vector<std::int64_t> profile_ranks(const RowProfile& profile, const std::vector<std::uint32_t>& rows) {
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (rows[i] <= rows[i - 1]) throw Error("profile_ranks: rows must be ascending and distinct");
  }
  // before[c] = profile rows with a count > c; seen[c] = rows of count c passed so far (ascending id).
  std::uint32_t max_count = 0;
  for (std::uint32_t c : profile.counts) max_count = std::max(max_count, c);
  std::vector<std::int64_t> before(static_cast<std::size_t>(max_count) + 2, 0), seen(before.size(), 0);
  for (std::uint32_t c : profile.counts) ++before[c];
  std::int64_t above = 0;
  for (std::size_t c = before.size(); c-- > 0;) {
    const std::int64_t here = before[c];
    before[c] = above;
    above += here;
  }
  std::vector<std::int64_t> ranks(rows.size(), absent_rank);
  std::size_t q = 0;
  for (std::size_t i = 0; i < profile.rows.size() && q < rows.size(); ++i) {
    const std::uint32_t c = profile.counts[i];
    while (q < rows.size() && rows[q] < profile.rows[i]) ++q;
    if (q < rows.size() && rows[q] == profile.rows[i]) ranks[q++] = before[c] + seen[c];
    ++seen[c];
  }
  return ranks;
}

DistinctRows distinct_rows(const std::int64_t* stream, std::size_t n) {
  DistinctRows d;
  d.rows.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (stream[i] < 0 || stream[i] > static_cast<std::int64_t>(UINT32_MAX)) {
      throw Error("distinct_rows: row " + std::to_string(stream[i]) + " is outside [0, 2^32)");
    }
    d.rows[i] = static_cast<std::uint32_t>(stream[i]);
  }
  std::sort(d.rows.begin(), d.rows.end());
  d.counts = count_runs(d.rows);
  d.rows.shrink_to_fit();
  return d;
}

}  // namespace hashmem::bench
