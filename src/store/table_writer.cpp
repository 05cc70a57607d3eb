// write_table_file: a complete table file (header, every tensor's rows, checksums) written atomically through
// OutputFile, as a pipeline so the disk and the CPUs work at the same time:
//   `threads` makers (the caller one of them) each make whole chunks (the RowSource), while a checksum thread
//   hashes the next chunk in file order and a writer thread writes the one before it with O_DIRECT (OutputFile
//   direct mode).
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
#include <map>
#include <memory>
#include <mutex>
#include <thread>
// XXH3 compiled here with this build's vector width (AVX-512 under -march=native: ~50 GB/s against the shared
// library's SSE2 ~18 GB/s here); the hash values are the same by XXH3's definition.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/huge_pages.hpp"
#include "common/parallel.hpp"
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

// The stages after the rows are made: chunk buffers cycle from the makers (acquire, fill, submit) to a checksum
// thread and on to a write thread, each of those taking chunks in file order, so hashing chunk k+1 overlaps
// writing chunk k (on the write thread the hash sat on the disk's critical path). Buffers are granted in chunk
// order, so the lowest unfinished chunk always has one and no maker waits on a later chunk. An error anywhere
// (fail(), or a stage's own) stops every stage and wakes every waiter; the destructor joins both threads.
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

  // Waits for chunk k's turn and a free buffer; returns the buffer's slot. Rethrows the first error.
  int acquire(std::uint64_t k) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return (next_acquire_ == k && !free_.empty()) || error_; });
    if (error_) std::rethrow_exception(error_);
    const int slot = free_.front();
    free_.pop_front();
    ++next_acquire_;
    changed_.notify_all();  // the next chunk's maker may go on
    return slot;
  }

  // Chunk start in `slot`'s buffer (kDirectAlign-aligned, with `margin` bytes of room on either side).
  std::uint8_t* data(int slot) { return buffers_[static_cast<std::size_t>(slot)].data() + margin_; }

  // Hands chunk k, filled into `slot`, to the checksum stage (in any order of k).
  void submit(std::uint64_t k, int slot, Chunk chunk) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(k, Job{slot, chunk});
    }
    changed_.notify_all();
  }

  // Records a maker's error (the first one wins) and stops everything.
  void fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = e;
      ready_.clear();
      hashed_.clear();
    }
    changed_.notify_all();
  }

  // Waits until every submitted chunk is checksummed and on disk; rethrows the first error.
  void finish() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return (ready_.empty() && hashed_.empty() && busy_ == 0) || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  enum class Stage { hash, write };
  struct Job {
    int slot = -1;
    Chunk chunk;
  };

  // Under the lock: the stage's next job, if it is there.
  bool next_job(Stage stage, Job& job) {
    if (stage == Stage::hash) {
      auto it = ready_.find(next_hash_);
      if (it == ready_.end()) return false;
      job = it->second;
      ready_.erase(it);
      ++next_hash_;
      return true;
    }
    if (hashed_.empty()) return false;
    job = hashed_.front();
    hashed_.pop_front();
    return true;
  }

  void run(Stage stage) {
    std::uint64_t done = 0;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || next_job(stage, job); });
        if (job.slot < 0) return;  // stopping: after finish() every queue is empty; otherwise unwinding
        ++busy_;
      }
      bool ok = true;
      try {
        const std::uint64_t size = job.chunk.end - job.chunk.begin;
        if (stage == Stage::hash) {
          sums_.add(job.chunk.begin, data(job.slot), size);
        } else {
          out_.write(reinterpret_cast<const char*>(data(job.slot)), size);
          progress_.update(done += size);
        }
      } catch (...) {
        fail(std::current_exception());
        ok = false;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stage == Stage::hash && ok && !error_ && !stopping_) {
          hashed_.push_back(job);
        } else {
          free_.push_back(job.slot);
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
  std::map<std::uint64_t, Job> ready_;  // submitted, by chunk number, not yet hashed
  std::deque<Job> hashed_;              // hashed, in file order, not yet written
  std::uint64_t next_acquire_ = 0, next_hash_ = 0;
  int busy_ = 0;  // stages working on a chunk outside the lock
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread hasher_, writer_;
};

// Makes the bytes [chunk.begin, chunk.end) of the data region at `dst` (rows of each tensor the range touches,
// whole rows, so up to a row is written before dst and after dst + size).
void fill_chunk(const TableInfo& info, const RowSource& source, ChunkWriter::Chunk chunk, std::uint8_t* dst) {
  const std::uint64_t rb = info.row_bytes;
  for (const TensorInfo& t : info.tensors) {
    const std::uint64_t from = std::max(chunk.begin, t.offset), to = std::min(chunk.end, t.offset + t.bytes);
    if (from >= to) continue;
    const std::int64_t first = static_cast<std::int64_t>((from - t.offset) / rb);
    const std::int64_t last = static_cast<std::int64_t>((to - t.offset + rb - 1) / rb);
    const std::uint64_t at = t.offset + static_cast<std::uint64_t>(first) * rb;  // file offset of row `first`
    source(t, first, last, dst + (static_cast<std::int64_t>(at) - static_cast<std::int64_t>(chunk.begin)));
  }
}

// The data region's chunks, made by `makers` threads (the caller one of them): maker w makes chunks w, w + makers,
// ... each whole, on its own (no fork and join per chunk, so no core waits for the slower half of a chunk).
void make_chunks(const TableInfo& info, const RowSource& source, int makers, std::uint64_t chunk_bytes,
                 ChunkWriter& writer) {
  const std::uint64_t begin = info.header_bytes, end = info.checksums_offset;
  const std::uint64_t count = (end - begin + chunk_bytes - 1) / chunk_bytes;
  auto maker = [&](std::uint64_t w) {
    try {
      for (std::uint64_t k = w; k < count; k += static_cast<std::uint64_t>(makers)) {
        const ChunkWriter::Chunk c{begin + k * chunk_bytes, std::min(end, begin + (k + 1) * chunk_bytes)};
        const int slot = writer.acquire(k);
        fill_chunk(info, source, c, writer.data(slot));
        writer.submit(k, slot, c);
      }
    } catch (...) {
      writer.fail(std::current_exception());
    }
  };
  std::vector<std::thread> others;
  for (int w = 1; w < makers; ++w) others.emplace_back(maker, static_cast<std::uint64_t>(w));
  maker(0);
  for (std::thread& t : others) t.join();
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
    const std::uint64_t data_bytes = info.checksums_offset - info.header_bytes;
    const std::uint64_t chunk = std::max<std::uint64_t>(kAlign, std::min(chunk_bytes, (data_bytes + kAlign - 1) / kAlign * kAlign));
    const std::uint64_t chunks = (data_bytes + chunk - 1) / chunk;
    const int makers = static_cast<int>(std::clamp<std::uint64_t>(chunks, 1, static_cast<std::uint64_t>(resolve_threads(threads))));
    const std::size_t margin = (info.row_bytes + kAlign - 1) / kAlign * kAlign;
    // A buffer per maker, one being hashed, one being written, and two of slack for the disk's jitter.
    ChunkWriter writer(out, checksums, progress, chunk, margin, makers + 4);
    make_chunks(info, source, makers, chunk, writer);
    writer.finish();
  }
  std::string tail;
  for (std::uint64_t s : sums) put_u64(tail, s);
  out.write(tail);
  out.commit();
  progress.finish();
}

}  // namespace hashmem::store
