// hashmem/output_file.hpp — files that appear complete or not at all.
//
// Bytes go to a temporary "<path>.tmp-XXXXXX" beside the target; commit() flushes, fsyncs, renames it over the
// target and fsyncs the directory. An error, an exception or SIGINT/SIGTERM/SIGHUP removes the temporary; what
// was at the target before is untouched. kill -9 cannot be caught: the writer holds an flock on its temporary
// for as long as it lives, so the next writer or opener of the same target (OutputFile, store::Table::open)
// finds temporaries nobody holds and removes them (as RocksDB cleans its directory on open).
//
// Threads: an OutputFile belongs to one thread at a time. remove_stale_temporaries may run beside live writers
// of the same target: it never removes a temporary that a live process holds.
// Ownership: an OutputFile owns its descriptor, buffer and temporary.
// Errors: hashmem::Error naming the target (not writable, disk full, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "hashmem/error.hpp"

namespace hashmem {

class OutputFile {
 public:
  // The path "-" means standard output (no atomicity; commit() just flushes). Removes stale temporaries of
  // `path` first. REQUIRES: the directory of `path` exists and is writable; throws Error naming `path` otherwise.
  // `direct`: bytes go to the disk with O_DIRECT in multiples of kDirectAlign, bypassing the page cache (big
  // sequential files: no copy into the cache, no flood of dirty pages for fsync to wait on), where the file
  // system allows it; the unaligned tail, and everything after a short write, goes through the cache.
  explicit OutputFile(const std::string& path, bool direct = false);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends bytes (buffered; in direct mode a kDirectAlign-aligned `data` met with an empty buffer goes to the
  // disk without a copy). Throws Error on a write failure (disk full, ...).
  void write(const char* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void put(char c) {
    if (used_ == kBufferSize) flush_buffer(false);
    buffer_[used_++] = c;
  }

  // Makes the file visible at its path. REQUIRES: not yet committed.
  void commit();

  std::uint64_t bytes_written() const { return written_ + used_; }
  const std::string& path() const { return path_; }
  bool direct() const { return direct_; }  // O_DIRECT still in use

  static constexpr std::size_t kDirectAlign = 4096;  // O_DIRECT offsets, lengths and buffer addresses

 private:
  static constexpr std::size_t kBufferSize = 1 << 20;
  void flush_buffer(bool all);  // direct mode keeps the unaligned tail unless `all`
  void write_through(const char* data, std::size_t size);  // unbuffered, counts into written_
  void stop_direct();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool to_stdout_ = false;
  bool committed_ = false;
  bool direct_ = false;
  char* buffer_ = nullptr;  // kDirectAlign-aligned
  std::size_t used_ = 0;
  std::uint64_t written_ = 0;
};

// Writes `contents` to `path` atomically (OutputFile + commit).
void write_file_atomically(const std::string& path, std::string_view contents);

// Removes the leftovers of writers of `path` that died without cleaning up (kill -9, power loss): files named
// "<path>.tmp-XXXXXX" (OutputFile) and `extra` names (e.g. a table's "<path>.work" copy) that no live process
// holds an flock on. Returns the bytes freed. Best effort: entries it cannot inspect or remove are left alone.
std::uint64_t remove_stale_temporaries(const std::string& path, std::initializer_list<std::string_view> extra = {});

// Takes an exclusive flock on `fd` (blocking) so remove_stale_temporaries leaves the file alone while it is held
// (until the descriptor is closed or the process dies). Returns false when the file was removed before the lock
// was taken (the caller then makes a new one).
bool hold_temporary(int fd);

}  // namespace hashmem
