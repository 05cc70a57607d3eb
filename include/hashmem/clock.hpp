// hashmem/clock.hpp — the monotonic clock every timing in hashmem reads (progress lines, stats, benchmarks).
// Threads: safe from any thread.
#pragma once

namespace hashmem {

// Seconds on a monotonic clock (steady_clock); only differences mean anything.
double now_seconds();

}  // namespace hashmem
