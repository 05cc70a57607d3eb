// The timing rules every benchmark follows, in one place: time the work itself (setup outside), repeat, and keep
// the best run — on a shared, noisy machine the best of several runs is the figure that repeats; the anchor of a
// ratio is measured the same way in the same process.
#pragma once

#include <algorithm>
#include <cstdint>

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

}  // namespace hashmem::bench
