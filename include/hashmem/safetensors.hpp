// hashmem/safetensors.hpp — files of named tensors (dense checkpoints, captured activations, row profiles).
//
// The Hugging Face layout: u64 little-endian header length, a JSON header {"name": {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {string: string}}, then the data, tensors packed in the order
// given. Every tensor's bytes are covered by an xxh3 checksum in the metadata ("xxh3:<name>": 16 hex digits),
// so damage is found when the file is opened. Dtypes: "F32", "I64", "U32", "U8". (Engram tables use the same
// container with their own layout: include/hashmem/store.hpp.)
//
// Threads: a SafetensorsFile may be read from many threads. Ownership: it owns its mapping; the data pointers it
// hands out are valid while it lives. Errors: hashmem::Error naming the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem {

class MappedFile;

struct TensorView {
  std::string name;
  std::string dtype;                 // "F32" | "I64" | "U32" | "U8"
  std::vector<std::int64_t> shape;   // empty = a scalar
  const void* data = nullptr;        // product(shape) elements of dtype, owned by the caller
};

// Bytes of one element of a safetensors dtype. Throws Error naming an unknown dtype.
std::size_t dtype_bytes(const std::string& dtype);

// Writes the tensors (and metadata, which must not use the "xxh3:" prefix) atomically at `path`.
// Throws Error naming `path` or the tensor (duplicate or empty name, unknown dtype, negative dimension).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A safetensors file mapped read-only and checked: the header parses, every tensor lies inside the file and has
// as many bytes as its dtype and shape say, and every checksum matches. Errors name the file and what is wrong
// ("truncated", "tensor 'x' fails its checksum: the file is damaged", ...).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  struct Entry {
    std::string dtype;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;  // valid while the file object lives
    std::size_t bytes = 0;
    std::int64_t numel() const;
  };
  bool contains(const std::string& name) const;
  // The tensor `name`, checked to have `dtype` (and `shape`, unless it is empty). Throws Error naming the file
  // and tensor when it is missing or differs.
  const Entry& get(const std::string& name, const std::string& dtype,
                   const std::vector<std::int64_t>& shape = {}) const;
  const std::map<std::string, Entry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace hashmem
