// tests/fuzz/scratch_dir.hpp — a private directory for targets whose code under test writes files (OutputFile
// needs a real directory for its temporary). Created on first use under /dev/shm (or /tmp), removed with what is
// left in it when the process exits normally.
// Threads: one per process, like the target. Ownership: a function-local static; nothing outlives the process.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace hashmem::fuzz {

class ScratchDir {
 public:
  ScratchDir() {
    path_ = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/hashmem-fuzz-XXXXXX" : "/tmp/hashmem-fuzz-XXXXXX";
    if (!::mkdtemp(path_.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

}  // namespace hashmem::fuzz
