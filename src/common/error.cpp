#include "hashmem/error.hpp"

namespace hashmem {

const char* version() { return HASHMEM_VERSION; }

}  // namespace hashmem
