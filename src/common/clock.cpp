#include "hashmem/clock.hpp"

#include <chrono>

namespace hashmem {

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace hashmem
