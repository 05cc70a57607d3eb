// parallel_for: split [0, n) into `threads` contiguous ranges and run fn(begin, end) on each, the calling
// thread taking the first. threads <= 0 means one per core. Exceptions from any range are rethrown (the first
// one) after all ranges finish. Threads are created per call: use it for work of a millisecond or more.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace hashmem {

inline int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

template <class Fn>
void parallel_for(std::int64_t n, int threads, Fn&& fn) {
  const std::int64_t parts = std::min<std::int64_t>(resolve_threads(threads), std::max<std::int64_t>(n, 1));
  if (parts <= 1) {
    fn(std::int64_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(parts));
  std::vector<std::thread> workers;
  auto run = [&](std::int64_t part) {
    try {
      fn(n * part / parts, n * (part + 1) / parts);
    } catch (...) {
      errors[static_cast<std::size_t>(part)] = std::current_exception();
    }
  };
  for (std::int64_t part = 1; part < parts; ++part) workers.emplace_back(run, part);
  run(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace hashmem
