// The SSD tier's RowDevice: a table file read with io_uring and O_DIRECT (row_device.hpp).
//
// A row read covers the 4 KiB blocks holding the row (rows are not block-aligned: a 640-byte row may straddle two
// blocks), so a read buffer is the row rounded up to blocks plus one block. Writes (write-back of dirty rows) are
// read-modify-write of those blocks. Writable tables work on a private copy "<path>.work" so the table at <path>
// stays a consistent checkpoint until checkpoint() replaces it.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file_io.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "store/format_internal.hpp"
#include "store/row_device.hpp"

namespace hashmem::store {
namespace {

struct AlignedBuffer {
  std::uint8_t* data = nullptr;
  std::size_t size = 0;
  explicit AlignedBuffer(std::size_t bytes = 0) { resize(bytes); }
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  void resize(std::size_t bytes) {
    std::free(data);
    data = nullptr;
    size = (bytes + kAlign - 1) / kAlign * kAlign;
    if (size) {
      data = static_cast<std::uint8_t*>(std::aligned_alloc(kAlign, size));
      if (!data) throw std::bad_alloc();
    }
  }
};

// The working copy of a writable table: created exclusively, held under an flock for as long as the table is
// open, filled from the table. Returns its descriptor (O_RDWR, not yet O_DIRECT).
int make_working_copy(const std::string& path, const std::string& work) {
  remove_stale_temporaries(path, {".work"});  // a dead writer's copy goes; a live writer's stays
  const int out = ::open(work.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0 && errno == EEXIST) {
    throw Error("table '" + path + "' is open for writing by another process (it holds '" + work + "')");
  }
  if (out < 0) throw Error("cannot create working copy '" + work + "': " + std::strerror(errno));
  if (!hold_temporary(out)) {
    ::close(out);
    throw Error("working copy '" + work + "' was removed while being created; open the table again");
  }
  const int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (in < 0 || ::fstat(in, &st) != 0) {
    const int e = errno;
    if (in >= 0) ::close(in);
    ::close(out);
    ::unlink(work.c_str());
    throw Error("cannot open table '" + path + "': " + std::strerror(e));
  }
  for (off_t left = st.st_size; left > 0;) {
    const ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(left), 0);
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(in);
      ::close(out);
      ::unlink(work.c_str());
      throw Error("cannot copy '" + path + "' to '" + work + "': " + std::strerror(e));
    }
    left -= n;
  }
  ::close(in);
  try {
    sync_data(out, work);
  } catch (...) {
    ::close(out);
    ::unlink(work.c_str());
    throw;
  }
  return out;
}

class FileDevice final : public RowDevice {
 public:
  FileDevice(const std::string& path, const TableInfo& info, bool writable, int queue_depth)
      : path_(path), info_(info), rb_(info.row_bytes) {
    std::int64_t at = 0;
    for (const TensorInfo& t : info.tensors) {
      base_.push_back(at);
      at += t.rows;
    }
    span_ = (rb_ + kAlign - 1) / kAlign * kAlign + kAlign;
    data_path_ = path;
    if (writable) {
      data_path_ = path + ".work";
      fd_ = make_working_copy(path, data_path_);
      working_copy_ = true;
      if (::fcntl(fd_, F_SETFL, O_DIRECT) != 0) {
        ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
        direct_ = false;
      }
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
      if (fd_ < 0 && errno == EINVAL) {
        // The file system has no O_DIRECT (tmpfs on older kernels): buffered reads with random-access advice.
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ >= 0) ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
        direct_ = false;
      }
      if (fd_ < 0) throw Error("cannot open table '" + path + "': " + std::strerror(errno));
    }
    try {
      io_ = std::make_unique<IoEngine>(fd_, queue_depth, data_path_);
      bounce_.resize(span_);
    } catch (...) {
      close_files();
      throw;
    }
  }
  ~FileDevice() override { close_files(); }

  const std::string& name() const override { return data_path_; }
  std::size_t span() const override { return span_; }
  std::size_t offset_in(std::int64_t row) const override { return offset_of(row) % kAlign; }

  void prepare(RowRead& r, std::int64_t row, void* buffer) const override {
    const std::uint64_t off = offset_of(row);
    r.row = row;
    r.io.offset = off / kAlign * kAlign;
    r.io.length = static_cast<std::uint32_t>((off + rb_ - r.io.offset + kAlign - 1) / kAlign * kAlign);
    r.io.buffer = buffer;
    r.io.copy_offset = static_cast<std::uint32_t>(off - r.io.offset);  // only the row's bytes are used
    r.io.copy_length = static_cast<std::uint32_t>(rb_);
  }
  void submit(RowRead* const* reads, std::size_t n) override {
    requests_.clear();
    for (std::size_t i = 0; i < n; ++i) requests_.push_back(&reads[i]->io);
    io_->submit(requests_.data(), requests_.size());
  }
  void wait(RowRead& r) override {
    try {
      io_->wait(&r.io, static_cast<std::uint32_t>(offset_of(r.row) + rb_ - r.io.offset));
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (" + row_name(r.row) + ")");
    }
  }
  bool done(const RowRead& r) override { return io_->done(&r.io); }

  void read_row(std::int64_t row, std::uint8_t* out) override {
    RowRead r;
    prepare(r, row, bounce_.data);
    with_row(row, [&] {
      // O_DIRECT reads whole blocks; the last one may reach past the end of the file.
      const std::size_t got = read_up_to(fd_, r.io.offset, bounce_.data, r.io.length, data_path_);
      if (got < need(r)) throw Error("'" + data_path_ + "' is truncated at byte " + std::to_string(r.io.offset + got));
    });
    std::memcpy(out, bounce_.data + offset_in(row), rb_);
    ++sync_reads_;
    sync_bytes_ += r.io.length;
  }

  void write_row(std::int64_t row, const std::uint8_t* bytes) override {
    RowRead r;
    prepare(r, row, bounce_.data);
    with_row(row, [&] {
      // Read-modify-write of the row's blocks; the last block may reach past the end of the file.
      const std::size_t got = read_up_to(fd_, r.io.offset, bounce_.data, r.io.length, data_path_);
      if (got < need(r)) throw Error("'" + data_path_ + "' is truncated at byte " + std::to_string(r.io.offset + got));
      std::memcpy(bounce_.data + offset_in(row), bytes, rb_);
      write_exact(fd_, r.io.offset, bounce_.data, r.io.length, data_path_);
      if (got < r.io.length && ::ftruncate(fd_, static_cast<off_t>(info_.file_bytes)) != 0) {
        throw Error("cannot restore the size of '" + data_path_ + "': " + std::strerror(errno));
      }
    });
  }

  void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) override {
    // In large aligned chunks (a checkpoint copies the whole working copy this way).
    const std::uint64_t begin = offset_of(first);
    const std::uint64_t end = begin + static_cast<std::uint64_t>(n) * rb_;
    const std::uint64_t a = begin / kAlign * kAlign;
    const std::uint64_t len = (end - a + kAlign - 1) / kAlign * kAlign;
    if (chunk_.size < len) chunk_.resize(len);
    const std::size_t got = read_up_to(fd_, a, chunk_.data, len, data_path_);
    if (got < end - a) throw Error("'" + data_path_ + "' is truncated at byte " + std::to_string(a + got));
    std::memcpy(out, chunk_.data + (begin - a), end - begin);
  }

  void read_rows(const std::int64_t* rows, std::size_t n,
                 const std::function<void(std::size_t, const std::uint8_t*)>& fn) override {
    // Coalesces rows whose blocks lie close together into reads of up to 4 MiB (a hot set of a quarter of the
    // table touches most blocks: near-sequential reads beat one 4 KiB read per row), up to 16 reads in flight.
    constexpr std::uint64_t kRunBytes = 4u << 20, kGap = 64u << 10;
    constexpr std::size_t kWave = 16;
    AlignedBuffer buffer(kWave * (kRunBytes + kAlign));
    std::vector<ReadRequest> reqs(kWave);
    std::size_t next = 0;
    while (next < n) {
      std::vector<std::pair<std::size_t, std::size_t>> runs;  // [first, last) indices of rows
      std::vector<ReadRequest*> batch;
      while (next < n && runs.size() < kWave) {
        const std::size_t first = next;
        const std::uint64_t start = offset_of(rows[first]) / kAlign * kAlign;
        std::uint64_t end = offset_of(rows[first]) + rb_;
        std::size_t last = first + 1;
        while (last < n) {
          const std::uint64_t off = offset_of(rows[last]);
          if (off > end + kGap || off + rb_ - start > kRunBytes) break;
          end = off + rb_;
          ++last;
        }
        ReadRequest& r = reqs[runs.size()];
        r.offset = start;
        r.length = static_cast<std::uint32_t>((end - start + kAlign - 1) / kAlign * kAlign);
        r.buffer = buffer.data + runs.size() * (kRunBytes + kAlign);
        batch.push_back(&r);
        runs.emplace_back(first, last);
        next = last;
      }
      io_->submit(batch.data(), batch.size());
      for (std::size_t k = 0; k < runs.size(); ++k) {
        ReadRequest& r = reqs[k];
        const auto [first, last] = runs[k];
        try {
          io_->wait(&r, static_cast<std::uint32_t>(offset_of(rows[last - 1]) + rb_ - r.offset));
        } catch (const Error& e) {
          // Let the rest of the wave finish before the buffer goes away.
          for (std::size_t j = k + 1; j < runs.size(); ++j) {
            try {
              io_->wait(&reqs[j], 0);
            } catch (const Error&) {
            }
          }
          throw Error(std::string(e.what()) + " (" + row_name(rows[first]) + " and the rows after it)");
        }
        for (std::size_t i = first; i < last; ++i) {
          fn(i, static_cast<const std::uint8_t*>(r.buffer) + (offset_of(rows[i]) - r.offset));
        }
      }
    }
  }

  void sync() override { sync_data(fd_, data_path_); }

  std::uint64_t reads() const override { return io_->reads() + sync_reads_; }
  std::uint64_t bytes_read() const override { return io_->bytes() + sync_bytes_; }
  int max_in_flight() const override { return io_->max_in_flight(); }
  bool direct_io() const override { return direct_; }

 private:
  std::uint64_t offset_of(std::int64_t global) const {
    const std::size_t t = tensor_of(global);
    return info_.tensors[t].offset + static_cast<std::uint64_t>(global - base_[t]) * rb_;
  }
  std::size_t tensor_of(std::int64_t global) const {
    return static_cast<std::size_t>(std::upper_bound(base_.begin(), base_.end(), global) - base_.begin() - 1);
  }
  std::string row_name(std::int64_t global) const {
    const std::size_t t = tensor_of(global);
    return "row " + std::to_string(global - base_[t]) + " of " + info_.tensors[t].name;
  }
  // Bytes of r's read that must arrive: up to the end of its row.
  std::size_t need(const RowRead& r) const { return offset_of(r.row) + rb_ - r.io.offset; }
  // Runs fn; an Error it throws gains the row's name.
  template <class Fn>
  void with_row(std::int64_t row, Fn&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (" + row_name(row) + ")");
    }
  }
  void close_files() {
    io_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (working_copy_) ::unlink(data_path_.c_str());
  }

  std::string path_, data_path_;
  TableInfo info_;
  std::size_t rb_ = 0, span_ = 0;
  std::vector<std::int64_t> base_;  // global row id of each tensor's row 0
  int fd_ = -1;
  bool working_copy_ = false, direct_ = true;
  std::unique_ptr<IoEngine> io_;
  std::vector<ReadRequest*> requests_;  // submit()'s scratch (callers serialise submits)
  AlignedBuffer bounce_, chunk_;
  std::uint64_t sync_reads_ = 0, sync_bytes_ = 0;
};

}  // namespace

std::unique_ptr<RowDevice> open_file_device(const std::string& path, const TableInfo& info, bool writable,
                                            int queue_depth) {
  return std::make_unique<FileDevice>(path, info, writable, queue_depth);
}

}  // namespace hashmem::store
