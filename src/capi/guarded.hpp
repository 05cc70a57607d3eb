// capi/guarded.hpp — the C API's exception boundary: every exception becomes an errptr message (c_api.h).
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>

namespace hashmem::capi {

// Stores a malloc'd copy of `message` in *errptr, freeing an earlier message first (errptr NULL: dropped). If
// that malloc fails, *errptr is NULL: there is no memory left to describe the error.
inline void set_error(char** errptr, const char* message) {
  if (errptr == nullptr) return;
  std::free(*errptr);
  const std::size_t n = std::strlen(message);
  *errptr = static_cast<char*>(std::malloc(n + 1));
  if (*errptr != nullptr) std::memcpy(*errptr, message, n + 1);
}

// Runs `body`, turning any exception into an errptr message. Returns false if it threw.
template <class Body>
bool guarded(char** errptr, const char* what, Body&& body) noexcept {
  try {
    body();
    return true;
  } catch (const std::bad_alloc&) {
    set_error(errptr, (std::string(what) + ": out of memory").c_str());
  } catch (const std::exception& e) {
    try {
      set_error(errptr, (std::string(what) + ": " + e.what()).c_str());
    } catch (...) {
      set_error(errptr, e.what());
    }
  } catch (...) {
    set_error(errptr, "unknown error");
  }
  return false;
}

}  // namespace hashmem::capi

