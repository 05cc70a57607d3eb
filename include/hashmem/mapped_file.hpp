// hashmem/mapped_file.hpp — a whole file mapped read-only (the readers of big inputs: datasets, token files,
// safetensors).
//
// Threads: a MappedFile may be read from many threads; it is not copyable.
// Ownership: the object owns the mapping; views into it are valid while it lives.
// Errors: hashmem::Error naming the file.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "hashmem/error.hpp"

namespace hashmem {

class MappedFile {
 public:
  // Throws Error naming `path` if it cannot be opened, is a directory, or cannot be mapped. Empty files map to
  // an empty view.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view view() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hashmem
