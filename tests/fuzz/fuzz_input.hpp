// tests/fuzz/fuzz_input.hpp — what the fuzz targets share: the input as a file, for parsers that take a path,
// and the check that stops a run on a broken contract.
//
// InputFile is a memfd (no disk I/O, nothing left behind) created once per process and rewritten for every
// input; path() is "/proc/self/fd/N", which open() and mmap() treat as a regular file of exactly those bytes.
// Threads: libFuzzer calls a target from one thread; an InputFile belongs to it. Ownership: the process owns the
// descriptor until it exits.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace hashmem::fuzz {

class InputFile {
 public:
  explicit InputFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Replaces the file's contents with data[0, size) and returns its path.
  const std::string& write(const std::uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) fail("ftruncate");
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) fail("pwrite");
      done += static_cast<std::size_t>(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] static void fail(const char* what) {
    std::perror(what);
    std::abort();
  }
  int fd_;
  std::string path_;
};

// A parser accepted the input but broke its own contract (what it returned is inconsistent): a bug, reported like
// a crash so that libFuzzer saves the input.
#define HASHMEM_FUZZ_CHECK(condition)                                                               \
  do {                                                                                              \
    if (!(condition)) {                                                                             \
      std::fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__, __LINE__, #condition);         \
      std::abort();                                                                                 \
    }                                                                                               \
  } while (0)

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace hashmem::fuzz
