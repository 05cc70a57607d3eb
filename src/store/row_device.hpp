// RowDevice: where the rows of a cached tier are backed, addressed by global row id (rows of every tensor
// numbered one after another, in file order). The cached tier (cached_tier.cpp) keeps its DRAM hot cache, staging
// buffers and tickets in front of a device and never sees files or offsets: the SSD tier's device is the table
// file read with io_uring and O_DIRECT (file_device.cpp); a remote tier brings its own device.
//
// Threads: submit/wait/done may be called from any thread; the synchronous calls are serialised by the caller
// (the cached tier's mutex). Ownership: a device owns its descriptors and I/O thread.
// Errors: hashmem::Error naming the backing (the file), the byte offset and the row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "hashmem/store.hpp"
#include "store/io_engine.hpp"

namespace hashmem::store {

// One asynchronous row read. The buffer is span() bytes, 4096-aligned; the row's bytes start at offset_in(row).
struct RowRead {
  std::int64_t row = -1;
  ReadRequest io;  // the device's request (buffer, result, done)
};

class RowDevice {
 public:
  virtual ~RowDevice() = default;
  virtual const std::string& name() const = 0;      // the backing, for messages
  virtual std::size_t span() const = 0;             // buffer bytes one row read needs
  virtual std::size_t offset_in(std::int64_t row) const = 0;  // where the row starts in its read buffer

  // Asynchronous reads. prepare() fills r for `row` into `buffer` (span() bytes, aligned); submit() starts them;
  // wait() blocks until r is done and throws Error naming the file, offset and row if it failed or came back short.
  virtual void prepare(RowRead& r, std::int64_t row, void* buffer) const = 0;
  virtual void submit(RowRead* const* reads, std::size_t n) = 0;
  virtual void wait(RowRead& r) = 0;
  virtual bool done(const RowRead& r) = 0;

  // Synchronous access, for updates, write-back and checkpoints. Bytes are row_bytes each.
  virtual void read_row(std::int64_t row, std::uint8_t* out) = 0;
  virtual void write_row(std::int64_t row, const std::uint8_t* bytes) = 0;
  // Rows [first, first + n), contiguous, into out (n · row_bytes).
  virtual void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) = 0;
  // Many rows at once (sorted ascending, distinct): fn(i, bytes) for each, in any order; bytes valid during the
  // call. For loading a hot set: the device batches as it likes.
  virtual void read_rows(const std::int64_t* rows, std::size_t n,
                         const std::function<void(std::size_t i, const std::uint8_t* bytes)>& fn) = 0;
  // Makes written rows durable.
  virtual void sync() = 0;

  // Counters since open: reads issued, bytes read, the deepest queue seen.
  virtual std::uint64_t reads() const = 0;
  virtual std::uint64_t bytes_read() const = 0;
  virtual int max_in_flight() const = 0;
  virtual bool direct_io() const = 0;
};

// The SSD tier's device: the table file at `path` through io_uring with O_DIRECT (buffered reads with random
// advice when the file system refuses O_DIRECT). Writable: a private working copy "<path>.work", created now and
// held under an flock while open (a second writer gets an error; a dead writer's copy is removed as stale).
std::unique_ptr<RowDevice> open_file_device(const std::string& path, const TableInfo& info, bool writable,
                                            int queue_depth);

}  // namespace hashmem::store
