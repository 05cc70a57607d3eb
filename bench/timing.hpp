// The timing rules every benchmark follows, in one place: time the work itself (setup outside), repeat, and keep
// the best run — on a shared, noisy machine the best of several runs is the figure that repeats; the anchor of a
// ratio is measured the same way in the same process.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sys/resource.h>
#include <vector>

#include "hashmem/clock.hpp"

namespace hashmem::bench {

// How often best_seconds runs its function.
struct Repeat {
  int runs = 3;                // at least this many runs ...
  double min_seconds = 0;      // ... and at least this much time in all (fast calls: more runs)
  double max_seconds = 1e300;  // but no further run once this much is spent (slow calls: one run may be all)
};

// Smallest wall time of fn() over the runs `repeat` asks for.
template <class Fn>
double best_seconds(Fn&& fn, Repeat repeat = {}) {
  double best = 1e300, spent = 0;
  for (int run = 0; run == 0 || ((run < repeat.runs || spent < repeat.min_seconds) && spent < repeat.max_seconds);
       ++run) {
    const double t0 = now_seconds();
    fn();
    const double dt = now_seconds() - t0;
    best = std::min(best, dt);
    spent += dt;
  }
  return best;
}

// Calls per second of a fast fn(): called in a loop for seconds / rounds, best of `rounds` such loops.
template <class Fn>
double calls_per_second(Fn&& fn, double seconds, int rounds = 3) {
  double best = 0;
  for (int round = 0; round < rounds; ++round) {
    const double t0 = now_seconds();
    std::int64_t calls = 0;
    double t = t0;
    do {
      fn();
      ++calls;
      t = now_seconds();
    } while (t - t0 < seconds / rounds);
    best = std::max(best, static_cast<double>(calls) / (t - t0));
  }
  return best;
}

// The q-quantile of `values` (q in [0, 1]) by the nearest-rank rule: the smallest value with at least q of them at
// or below it. 0 for no values.
inline double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank > 0 ? rank - 1 : 0)];
}

// CPU seconds (user + system) of this process (RUSAGE_SELF) or of its waited-for children (RUSAGE_CHILDREN).
inline double cpu_seconds(int who = RUSAGE_SELF) {
  rusage u{};
  ::getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace hashmem::bench
