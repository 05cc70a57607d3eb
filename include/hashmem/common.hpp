// hashmem/common.hpp — pieces every part uses: the error type, crash-safe output files, read-only
// file mappings and progress reporting.
//
// Threads: an OutputFile, MappedFile or Progress belongs to one thread at a time; none is internally
// synchronised. Error is an ordinary exception value.
// Ownership: each object owns its file descriptor / mapping and releases it in its destructor.
// Errors: every failure throws hashmem::Error whose message names the file or argument at fault.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hashmem {

// The one exception type of the library. The message is a complete sentence fragment that names the bad
// argument or file, suitable for printing as "hashmem: <message>".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Version string of the library ("MAJOR.MINOR.PATCH").
const char* version();

// A file that appears at `path` complete or not at all. Bytes go to a temporary file beside `path`;
// commit() flushes, fsyncs, renames it over `path` and fsyncs the directory. If the object is destroyed
// without commit() (error, exception, early return) the temporary file is removed and whatever was at
// `path` before is untouched. The path "-" means standard output (no atomicity, commit() just flushes).
class OutputFile {
 public:
  // REQUIRES: the directory of `path` exists and is writable. Throws Error naming `path` otherwise.
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends bytes (buffered). Throws Error on a write failure (disk full, ...).
  void write(const char* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void put(char c) {
    if (used_ == kBufferSize) flush_buffer();
    buffer_[used_++] = c;
  }

  // Makes the file visible at its path. REQUIRES: not yet committed.
  void commit();

  std::uint64_t bytes_written() const { return written_ + used_; }
  const std::string& path() const { return path_; }

 private:
  static constexpr std::size_t kBufferSize = 1 << 20;
  void flush_buffer();
  void write_through(const char* data, std::size_t size);  // unbuffered, counts into written_

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool to_stdout_ = false;
  bool committed_ = false;
  char* buffer_ = nullptr;
  std::size_t used_ = 0;
  std::uint64_t written_ = 0;
};

// Writes `contents` to `path` atomically (OutputFile + commit).
void write_file_atomically(const std::string& path, std::string_view contents);

// A whole file mapped read-only. Empty files map to an empty view.
class MappedFile {
 public:
  // Throws Error naming `path` if it cannot be opened, is a directory, or cannot be mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view view() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Progress of a long job: a line on stderr, rewritten at most 4 times a second, and only when stderr is a
// terminal (so logs and pipes stay clean). `total` may be 0 when unknown.
class Progress {
 public:
  Progress(std::string label, std::uint64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(std::uint64_t done);
  void set_label(std::string label);
  void finish();  // prints the final state and a newline (if anything was printed)

 private:
  void draw(bool final_line);
  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  double start_seconds_;
  double last_draw_seconds_ = -1.0;
  bool enabled_;
  bool drawn_ = false;
};

// ---- safetensors files of named tensors (dense checkpoints, captured activations, row profiles) ----
// The Hugging Face layout: u64 little-endian header length, a JSON header {"name": {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {string: string}}, then the data, tensors packed in the order
// given. Every tensor's bytes are covered by an xxh3 checksum in the metadata ("xxh3:<name>": 16 hex digits),
// so damage is found when the file is opened. Dtypes: "F32", "I64", "U32", "U8".

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

// Monotonic clock in seconds.
double now_seconds();

// SHA-256 of a byte range as 64 lowercase hex digits (OpenSSL).
std::string sha256_hex(const void* data, std::size_t size);

}  // namespace hashmem
