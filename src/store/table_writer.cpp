// write_table_file: a complete table file (header, every tensor's rows, checksums) written atomically through
// OutputFile, as a two-stage pipeline so the disk and the CPUs work at the same time:
//   the caller's thread makes the rows of chunk i+2 (the RowSource, itself spread over `threads`) while
//   a checksum thread hashes chunk i+1 and a writer thread writes chunk i with O_DIRECT (OutputFile direct mode).
// Chunks are fixed ranges of file offsets (kChunkBytes, a multiple of 4 KiB, from the 4 KiB-aligned data start),
// so every write but the last is aligned and goes to the disk without a copy. A row that straddles a chunk
// boundary is made in both chunks (each chunk buffer has a row's room before and after it). Checksum blocks
// restart at each tensor, so they need not line up with chunks: a block split by a chunk boundary is hashed in
// two pieces by XXH3's streaming interface, which gives the same value as hashing it whole. The bytes are those of
// the first, serial writer (tests/test_store_create.cpp holds them to its digests).
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
// XXH3 compiled here with this build's vector width (AVX-512 under -march=native: ~50 GB/s against the shared
// library's SSE2 ~18 GB/s here); the hash values are the same by XXH3's definition.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/huge_pages.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"
#include "store/format_internal.hpp"

namespace hashmem::store {
namespace {

void put_u64(std::string& s, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The checksums of the data region, fed in file order in pieces of any size: one XXH3 per checksum block of each
// tensor, appended to `sums`.
class BlockChecksums {
 public:
  BlockChecksums(const TableInfo& info, std::vector<std::uint64_t>& sums)
      : info_(info), sums_(sums), state_(XXH3_createState(), XXH3_freeState) {
    if (!state_) throw std::bad_alloc();
  }

  void add(std::uint64_t at, const std::uint8_t* data, std::uint64_t size) {
    const std::uint64_t block = info_.checksum_block;
    while (size > 0) {
      while (at >= info_.tensors[tensor_].offset + info_.tensors[tensor_].bytes) ++tensor_;
      const TensorInfo& t = info_.tensors[tensor_];
      const std::uint64_t in = at - t.offset, start = in / block * block, end = std::min(t.bytes, start + block);
      const std::uint64_t n = std::min(size, end - in);
      if (in == start && n == end - start) {
        sums_.push_back(XXH3_64bits(data, n));  // the whole block at once
      } else {
        if (in == start) XXH3_64bits_reset(state_.get());
        XXH3_64bits_update(state_.get(), data, n);
        if (in + n == end) sums_.push_back(XXH3_64bits_digest(state_.get()));
      }
      at += n;
      data += n;
      size -= n;
    }
  }

 private:
  const TableInfo& info_;
  std::vector<std::uint64_t>& sums_;
  std::size_t tensor_ = 0;
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state_;
};

// The writer stages: chunk buffers cycle from the caller (acquire, fill, submit) to a checksum thread and on to a
// write thread, each taking chunks in file order, so hashing chunk i+1 overlaps writing chunk i (on the writer
// thread itself the hash was on the disk's critical path: 32 MiB at ~13 GB/s beside a ~12 ms write). An error
// in any stage stops them all; the destructor joins both threads.
class ChunkWriter {
 public:
  struct Chunk {
    std::uint64_t begin = 0, end = 0;  // file offsets
  };

  ChunkWriter(OutputFile& out, BlockChecksums& sums, Progress& progress, std::uint64_t chunk_bytes,
              std::size_t margin, int slots)
      : out_(out), sums_(sums), progress_(progress), margin_(margin) {
    for (int i = 0; i < slots; ++i) {
      buffers_.emplace_back(chunk_bytes + 2 * margin);
      free_.push_back(i);
    }
    hasher_ = std::thread([this] { run(Stage::hash); });
    writer_ = std::thread([this] { run(Stage::write); });
  }

  ~ChunkWriter() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      ready_.clear();  // unwinding after an error: what is not written yet never will be
      hashed_.clear();
    }
    changed_.notify_all();
    hasher_.join();
    writer_.join();
  }

  // A free buffer's chunk start (kDirectAlign-aligned, with `margin` bytes of room on either side).
  std::uint8_t* acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !free_.empty() || error_; });
    if (error_) std::rethrow_exception(error_);
    current_ = free_.front();
    free_.pop_front();
    return buffers_[static_cast<std::size_t>(current_)].data() + margin_;
  }

  // Hands the acquired buffer, holding the bytes of `chunk`, to the checksum stage.
  void submit(Chunk chunk) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back({current_, chunk});
    }
    changed_.notify_all();
  }

  // Waits until every submitted chunk is checksummed and on disk; rethrows a stage's error.
  void finish() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return (ready_.empty() && hashed_.empty() && busy_ == 0) || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  enum class Stage { hash, write };
  using Job = std::pair<int, Chunk>;

  void run(Stage stage) {
    std::deque<Job>& in = stage == Stage::hash ? ready_ : hashed_;
    std::uint64_t done = 0;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return !in.empty() || stopping_; });
        if (stopping_) return;  // (after finish() every queue is empty; otherwise unwinding from an error)
        job = in.front();
        in.pop_front();
        ++busy_;
      }
      bool ok = true;
      try {
        const std::uint8_t* data = buffers_[static_cast<std::size_t>(job.first)].data() + margin_;
        const std::uint64_t size = job.second.end - job.second.begin;
        if (stage == Stage::hash) {
          sums_.add(job.second.begin, data, size);
        } else {
          out_.write(reinterpret_cast<const char*>(data), size);
          progress_.update(done += size);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        ready_.clear();
        hashed_.clear();
        ok = false;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stage == Stage::hash && ok && !error_ && !stopping_) {
          hashed_.push_back(job);
        } else {
          free_.push_back(job.first);
        }
        --busy_;
      }
      changed_.notify_all();
    }
  }

  OutputFile& out_;
  BlockChecksums& sums_;
  Progress& progress_;
  const std::size_t margin_;
  std::vector<HugeVector<std::uint8_t>> buffers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<int> free_;
  std::deque<Job> ready_, hashed_;  // submitted, not yet hashed; hashed, not yet written
  int current_ = -1, busy_ = 0;     // busy_: stages working on a chunk outside the lock
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread hasher_, writer_;
};

// Makes the bytes [chunk.begin, chunk.end) of the data region at `dst` (rows of each tensor the range touches,
// whole rows, so up to a row is written before dst and after dst + size).
void fill_chunk(const TableInfo& info, const RowSource& source, int threads, ChunkWriter::Chunk chunk,
                std::uint8_t* dst) {
  const std::uint64_t rb = info.row_bytes;
  for (const TensorInfo& t : info.tensors) {
    const std::uint64_t from = std::max(chunk.begin, t.offset), to = std::min(chunk.end, t.offset + t.bytes);
    if (from >= to) continue;
    const std::int64_t first = static_cast<std::int64_t>((from - t.offset) / rb);
    const std::int64_t last = static_cast<std::int64_t>((to - t.offset + rb - 1) / rb);
    const std::uint64_t at = t.offset + static_cast<std::uint64_t>(first) * rb;  // file offset of row `first`
    source(t, first, last, dst + (static_cast<std::int64_t>(at) - static_cast<std::int64_t>(chunk.begin)), threads);
  }
}

}  // namespace

void write_table_file(const TableInfo& info, const std::string& path, int threads, const RowSource& source,
                      std::uint64_t chunk_bytes) {
  const std::string header = header_for(info);
  if (8 + header.size() != info.header_bytes) throw Error("internal: header size changed for '" + path + "'");
  if (chunk_bytes == 0 || chunk_bytes % kAlign != 0) throw Error("internal: write chunk must be a multiple of 4 KiB");
  OutputFile out(path, /*direct=*/true);
  std::string prefix;
  put_u64(prefix, header.size());
  out.write(prefix);
  out.write(header);
  std::vector<std::uint64_t> sums;
  sums.push_back(XXH3_64bits(header.data(), header.size()));

  Progress progress("write " + path, info.data_bytes());
  {
    BlockChecksums checksums(info, sums);
    const std::uint64_t begin = info.header_bytes, end = info.checksums_offset;
    const std::uint64_t chunk = std::min(chunk_bytes, (end - begin + kAlign - 1) / kAlign * kAlign);
    const std::size_t margin = (info.row_bytes + kAlign - 1) / kAlign * kAlign;
    ChunkWriter writer(out, checksums, progress, std::max<std::uint64_t>(chunk, kAlign), margin, 3);
    for (std::uint64_t at = begin; at < end; at += chunk) {
      const ChunkWriter::Chunk c{at, std::min(end, at + chunk)};
      fill_chunk(info, source, threads, c, writer.acquire());
      writer.submit(c);
    }
    writer.finish();
  }
  std::string tail;
  for (std::uint64_t s : sums) put_u64(tail, s);
  out.write(tail);
  out.commit();
  progress.finish();
}

}  // namespace hashmem::store
