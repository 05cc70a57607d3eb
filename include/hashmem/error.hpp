// hashmem/error.hpp — the one exception type of the library, and its version.
//
// Every failure in hashmem throws hashmem::Error whose message names the argument or file at fault, written to
// be printed as "hashmem: <message>". The C++ API throws; nothing else (std::bad_alloc aside) escapes it.
// Threads: an Error is an ordinary exception value.
#pragma once

#include <stdexcept>

namespace hashmem {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Version string of the library ("MAJOR.MINOR.PATCH").
const char* version();

}  // namespace hashmem
