#include "hashmem/common.hpp"

#include <chrono>

namespace hashmem {

const char* version() { return HASHMEM_VERSION; }

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace hashmem
