// The tiered store: Table::open, prefetch/gather on the DRAM and SSD tiers, updates, checkpoint.
//
// SSD tier data path, per row of a prefetch (under mu_):
//   static hot set hit → decode from the arena at gather;  dynamic cache hit → pin the slot, decode at gather;
//   read already in flight for the row → share its staging buffer;  else take a staging buffer and enqueue an
//   O_DIRECT read of the 4 KiB blocks holding the row;  no buffer free (staging bound) → "deferred": read at
//   gather in waves of queue_depth through a private bounce buffer (the late path: correct, just slower).
// At gather the staged rows are decoded, then offered to the cache policy (admit, possibly evicting and
// writing back a dirty row) and their buffers freed when no other ticket shares them.
// Updates (exclusive): a row's current bytes are found in the static set, a cache slot, a staging buffer or
// the file; the new bytes go to the same place (staging buffers are patched so tickets stay current) and,
// when the row is not cached, into the cache as dirty, or written through when the policy refuses.
// Writable SSD tables work on a private copy "<path>.work" (dirty write-back goes there); checkpoint flushes
// dirty rows into it and then writes a fresh table file over <path> atomically.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <shared_mutex>
#include <sys/stat.h>
#include <unistd.h>

#include "common/huge_pages.hpp"
#include "common/parallel.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/store.hpp"
#include "store/cache_policy.hpp"
#include "store/format_internal.hpp"
#include "store/io_engine.hpp"
#include "store/row_map.hpp"

namespace hashmem::store {

double Stats::hit_ratio() const {
  return lookups ? static_cast<double>(static_hits + cache_hits + inflight_hits) / static_cast<double>(lookups) : 0.0;
}

Tier parse_tier(const std::string& name) {
  if (name == "dram") return Tier::dram;
  if (name == "ssd") return Tier::ssd;
  throw Error("unknown tier '" + name + "' (known: dram, ssd)");
}

namespace {

enum Kind : std::uint8_t { kStatic, kSlot, kStaging, kDeferred, kDram };

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

int open_or_throw(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open table '" + path + "': " + std::strerror(errno));
  return fd;
}

void copy_file(const std::string& from, const std::string& to) {
  const int in = open_or_throw(from, O_RDONLY);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    throw Error("cannot create working copy '" + to + "': " + std::strerror(errno));
  }
  struct stat st {};
  ::fstat(in, &st);
  off_t left = st.st_size;
  while (left > 0) {
    const ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(left), 0);
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(in);
      ::close(out);
      ::unlink(to.c_str());
      throw Error("cannot copy '" + from + "' to '" + to + "': " + std::strerror(e));
    }
    left -= n;
  }
  ::close(in);
  if (::fsync(out) != 0 || ::close(out) != 0) throw Error("cannot write working copy '" + to + "'");
}

}  // namespace

struct Ticket::State {
  Table::Impl* owner = nullptr;
  int tensor = 0;
  std::vector<std::int64_t> rows;   // global row ids
  std::vector<std::uint8_t> kind;   // Kind
  std::vector<std::int64_t> where;  // arena slot or staging index
  bool consumed = false;
};

struct Table::Impl {
  std::string path;
  TableInfo info;
  OpenOptions opt;
  std::vector<std::int64_t> base;  // global row id of each tensor's row 0
  std::size_t rb = 0;              // stored row bytes
  std::shared_mutex rw;            // gathers shared; apply_rows / checkpoint exclusive

  // Tier::dram
  HugeVector<std::uint8_t> memory;

  // Tier::ssd
  std::string data_path;  // path, or the working copy when writable
  int fd = -1;            // O_DIRECT
  std::unique_ptr<IoEngine> io;
  std::mutex mu;          // everything below
  std::size_t span = 0;   // bytes a row read may need: row_bytes rounded to blocks, plus one block
  HugeVector<std::uint8_t> arena;  // cache slots: [0, n_static) static, then dynamic
  std::int64_t n_static = 0, n_dynamic = 0;
  RowMap static_slot;               // global row → static slot
  std::vector<std::uint8_t> static_dirty;
  std::unique_ptr<CachePolicy> policy;
  std::vector<std::int64_t> slot_row;  // dynamic slot → global row (−1 free)
  std::vector<std::uint8_t> slot_dirty;
  RowMap cached;                       // global row → dynamic slot (mirror of the policy, without touching it)
  // staging pool
  AlignedBuffer staging;
  std::vector<ReadRequest> requests;
  std::vector<std::int64_t> staging_row;  // global row, −1 when free
  std::vector<std::int32_t> staging_refs;
  std::vector<std::int32_t> free_staging;
  RowMap in_flight;                       // global row → staging index
  AlignedBuffer bounce;                   // updates / write-back read-modify-write
  std::vector<std::uint8_t> scratch;      // update_row's copy of an uncached row
  std::unique_ptr<Table> moments;         // Adam's per-row moments (adam_moments())

  Stats stats;
  std::uint64_t io_reads_base = 0, io_bytes_base = 0;  // the engine's counters at the last reset_stats
  std::mutex stats_mu;  // for the DRAM tier's counters (gathers run in parallel)

  std::uint64_t offset_of(std::int64_t global) const {
    const auto t = static_cast<std::size_t>(std::upper_bound(base.begin(), base.end(), global) - base.begin() - 1);
    return info.tensors[t].offset + static_cast<std::uint64_t>(global - base[t]) * rb;
  }
  std::uint8_t* slot_ptr(std::int64_t slot) { return arena.data() + static_cast<std::size_t>(slot) * rb; }
  std::uint8_t* dynamic_ptr(std::int64_t slot) { return slot_ptr(n_static + slot); }
  std::uint8_t* staging_ptr(std::int64_t i) { return staging.data + static_cast<std::size_t>(i) * span; }
  // Where the row lives inside a read that starts at its aligned block.
  std::size_t in_block(std::int64_t global) const { return offset_of(global) % kAlign; }
  void prepare_read(ReadRequest& r, std::int64_t global, void* buffer) const {
    const std::uint64_t off = offset_of(global);
    r.offset = off / kAlign * kAlign;
    r.length = static_cast<std::uint32_t>((off + rb - r.offset + kAlign - 1) / kAlign * kAlign);
    r.buffer = buffer;
  }
  std::uint32_t need(const ReadRequest& r, std::int64_t global) const {
    return static_cast<std::uint32_t>(offset_of(global) + rb - r.offset);
  }

  void check_rows(int tensor, const std::int64_t* rows, std::size_t n) const {
    if (tensor < 0 || static_cast<std::size_t>(tensor) >= info.tensors.size()) {
      throw Error("table '" + path + "' has no tensor " + std::to_string(tensor) + " (it has " +
                  std::to_string(info.tensors.size()) + ")");
    }
    const std::int64_t limit = info.tensors[static_cast<std::size_t>(tensor)].rows;
    for (std::size_t i = 0; i < n; ++i) {
      if (rows[i] < 0 || rows[i] >= limit) {
        throw Error("row id " + std::to_string(rows[i]) + " is outside " + info.tensors[static_cast<std::size_t>(tensor)].name +
                    " of '" + path + "' (rows 0.." + std::to_string(limit - 1) + ")");
      }
    }
  }

  // ---- SSD tier pieces; callers hold mu ----

  void write_row_to_file(std::int64_t global, const std::uint8_t* bytes) {
    ReadRequest r;
    prepare_read(r, global, bounce.data);
    // read-modify-write of the row's blocks with O_DIRECT through the bounce buffer
    std::size_t done = 0;
    while (done < r.length) {
      const ssize_t got = ::pread(fd, bounce.data + done, r.length - done, static_cast<off_t>(r.offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;  // end of file inside the last block: the rest stays as read
      done += static_cast<std::size_t>(got);
    }
    if (done < need(r, global)) throw Error("cannot read '" + data_path + "' for write-back: " + std::strerror(errno));
    std::memcpy(bounce.data + in_block(global), bytes, rb);
    std::size_t put = 0;
    while (put < r.length) {
      const ssize_t w = ::pwrite(fd, bounce.data + put, r.length - put, static_cast<off_t>(r.offset + put));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw Error("cannot write '" + data_path + "': " + std::strerror(errno));
      put += static_cast<std::size_t>(w);
    }
    if (put > done) {
      // The last block was past end of file: O_DIRECT wrote whole blocks; cut the file back.
      if (::ftruncate(fd, static_cast<off_t>(info.file_bytes)) != 0) {
        throw Error("cannot restore the size of '" + data_path + "': " + std::strerror(errno));
      }
    }
    ++stats.writes;
    stats.bytes_written += put;
  }

  void read_row_from_file(std::int64_t global, std::uint8_t* out) {
    ReadRequest r;
    prepare_read(r, global, bounce.data);
    std::size_t done = 0;
    const std::uint32_t want = need(r, global);
    while (done < want) {
      const ssize_t got = ::pread(fd, bounce.data + done, r.length - done, static_cast<off_t>(r.offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw Error("cannot read '" + data_path + "' at byte " + std::to_string(r.offset + done));
      done += static_cast<std::size_t>(got);
    }
    std::memcpy(out, bounce.data + in_block(global), rb);
    ++stats.reads;
    stats.bytes_read += done;
  }

  // Offers a row just read to the dynamic cache; evicted dirty rows are written back first.
  void admit(std::int64_t global, const std::uint8_t* bytes, bool dirty) {
    if (!policy || cached.find(global) >= 0) return;
    std::int64_t evicted = -1;
    const std::int64_t slot = policy->admit(global, &evicted);
    if (slot < 0) {
      if (dirty) write_row_to_file(global, bytes);
      return;
    }
    const auto s = static_cast<std::size_t>(slot);
    if (slot_row[s] >= 0) {
      if (slot_dirty[s]) write_row_to_file(slot_row[s], dynamic_ptr(slot));
      cached.erase(slot_row[s]);
    }
    std::memcpy(dynamic_ptr(slot), bytes, rb);
    slot_row[s] = global;
    slot_dirty[s] = dirty;
    cached.set(global, slot);
  }

  // A hint that update_row(g) follows soon: on the DRAM tier, start the cache misses of the row's lines (an
  // update touches rows at random; without this the misses serialise).
  void prefetch_for_update(std::int64_t g) const {
    if (opt.tier != Tier::dram) return;
    const std::uint8_t* p = memory.data() + static_cast<std::size_t>(g) * rb;
    for (std::size_t c = 0; c < rb; c += 64) __builtin_prefetch(p + c, 1);
  }

  // Calls fn(bytes) on row g's current stored bytes wherever they live (DRAM array, static or dynamic slot,
  // staging buffer or file) and keeps every copy consistent: staging buffers holding the row are patched (tickets
  // stay current) and a row that was not cached enters the cache as dirty, or is written through when the policy
  // refuses it. REQUIRES: rw held exclusively and mu held.
  template <class Fn>
  void update_row(std::int64_t g, Fn&& fn) {
    if (opt.tier == Tier::dram) {
      fn(memory.data() + static_cast<std::size_t>(g) * rb);
      return;
    }
    std::int64_t s = static_slot.find(g);
    if (s >= 0) {
      static_dirty[static_cast<std::size_t>(s)] = 1;
      fn(slot_ptr(s));
      return;
    }
    if ((s = cached.find(g)) >= 0) {
      slot_dirty[static_cast<std::size_t>(s)] = 1;
      fn(dynamic_ptr(s));
      return;
    }
    scratch.resize(rb);
    const std::int64_t st = in_flight.find(g);
    if (st >= 0) {
      ReadRequest& r = requests[static_cast<std::size_t>(st)];
      io->wait(&r, need(r, g));
      std::memcpy(scratch.data(), staging_ptr(st) + in_block(g), rb);
    } else {
      read_row_from_file(g, scratch.data());
    }
    fn(scratch.data());
    if (st >= 0) std::memcpy(staging_ptr(st) + in_block(g), scratch.data(), rb);
    admit(g, scratch.data(), true);
  }

  // The Adam moments of this table: "<path>.adam", [m | v] f32 per row, created with zeros on first use and
  // opened with the same tier options. REQUIRES: rw held exclusively.
  Impl* adam_moments() {
    if (!moments) {
      const std::string mpath = path + ".adam";
      bool fresh = ::access(mpath.c_str(), F_OK) != 0;
      if (!fresh) {
        const TableInfo mi = read_info(mpath);
        if (mi.dim != 2 * info.dim || mi.dtype != DType::f32 || mi.total_rows() != info.total_rows()) {
          throw Error("Adam moments '" + mpath + "' do not belong to table '" + path + "' (rows, dim or dtype differ)");
        }
      }
      if (fresh) {
        CreateOptions co;
        co.config = info.config;
        co.dim = 2 * info.dim;
        co.dtype = DType::f32;
        co.init = Init::zeros;
        co.checksum_block = info.checksum_block;
        create_table(co, mpath);
      }
      moments = Table::open(mpath, opt);
    }
    return moments->impl_.get();
  }

  void release_staging(std::int64_t i) {
    const auto s = static_cast<std::size_t>(i);
    if (--staging_refs[s] > 0) return;
    const std::int64_t global = staging_row[s];
    in_flight.erase(global);
    admit(global, staging_ptr(i) + in_block(global), false);
    staging_row[s] = -1;
    free_staging.push_back(static_cast<std::int32_t>(i));
  }

  void release(Ticket::State& st) {
    for (std::size_t i = 0; i < st.rows.size(); ++i) {
      if (st.kind[i] == kSlot) policy->unpin(st.where[i]);
      if (st.kind[i] == kStaging) {
        io->wait(&requests[static_cast<std::size_t>(st.where[i])], 0);  // the buffer must not be reused mid-read
        release_staging(st.where[i]);
      }
    }
    st.consumed = true;
  }
};

Ticket::Ticket() = default;
Ticket::Ticket(Ticket&&) noexcept = default;
Ticket& Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Ticket dropped(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}
Ticket::~Ticket() {
  if (state_ && !state_->consumed && state_->owner && state_->owner->opt.tier == Tier::ssd) {
    Table::Impl& impl = *state_->owner;
    try {
      std::lock_guard<std::mutex> lock(impl.mu);
      impl.release(*state_);
    } catch (...) {
      // a failed read: nothing to release beyond what release() did
    }
  }
}
std::size_t Ticket::size() const { return state_ ? state_->rows.size() : 0; }

Table::Table(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Table::~Table() {
  if (!impl_) return;
  impl_->io.reset();
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (impl_->data_path != impl_->path && !impl_->data_path.empty()) ::unlink(impl_->data_path.c_str());
}

const TableInfo& Table::info() const { return impl_->info; }
const OpenOptions& Table::options() const { return impl_->opt; }

std::unique_ptr<Table> Table::open(const std::string& path, const OpenOptions& options) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.path = path;
  m.opt = options;
  m.info = read_info(path);
  m.rb = m.info.row_bytes;
  std::int64_t at = 0;
  for (const TensorInfo& t : m.info.tensors) {
    m.base.push_back(at);
    at += t.rows;
  }
  if (options.tier == Tier::dram) {
    const int fd = open_or_throw(path, O_RDONLY);
    m.memory.resize(m.info.data_bytes());
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::uint64_t done = 0;
    const std::uint64_t start = m.info.header_bytes;
    Progress progress("load " + path, m.memory.size());
    while (done < m.memory.size()) {
      const std::size_t want = std::min<std::uint64_t>(m.memory.size() - done, 64u << 20);
      const ssize_t got = ::pread(fd, m.memory.data() + done, want, static_cast<off_t>(start + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        ::close(fd);
        throw Error("cannot read table '" + path + "' into DRAM: " + (got < 0 ? std::strerror(errno) : "truncated"));
      }
      done += static_cast<std::uint64_t>(got);
      progress.update(done);
    }
    progress.finish();
    ::close(fd);
    return std::unique_ptr<Table>(new Table(std::move(impl)));
  }

  // Tier::ssd
  if (options.queue_depth < 1 || options.queue_depth > 4096) {
    throw Error("queue depth must be in [1, 4096], got " + std::to_string(options.queue_depth));
  }
  if (!(options.static_fraction >= 0 && options.static_fraction <= 1)) {
    throw Error("static fraction must be in [0, 1]");
  }
  m.data_path = path;
  if (options.writable) {
    m.data_path = path + ".work";
    copy_file(path, m.data_path);
  }
  m.fd = ::open(m.data_path.c_str(), (options.writable ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
  if (m.fd < 0 && errno == EINVAL) {
    // The file system has no O_DIRECT (tmpfs on older kernels): buffered reads with random-access advice.
    m.fd = open_or_throw(m.data_path, options.writable ? O_RDWR : O_RDONLY);
    ::posix_fadvise(m.fd, 0, 0, POSIX_FADV_RANDOM);
    m.stats.direct_io = false;
  } else if (m.fd < 0) {
    throw Error("cannot open table '" + m.data_path + "': " + std::strerror(errno));
  }
  m.span = (m.rb + kAlign - 1) / kAlign * kAlign + kAlign;
  m.io = std::make_unique<IoEngine>(m.fd, options.queue_depth, m.data_path);
  m.bounce.resize(m.span);

  const std::int64_t slots = static_cast<std::int64_t>(options.dram_budget / m.rb);
  std::int64_t hot = 0;
  for (const auto& h : options.hot_rows) hot += static_cast<std::int64_t>(h.size());
  if (options.hot_rows.size() > m.info.tensors.size()) {
    throw Error("hot rows given for " + std::to_string(options.hot_rows.size()) + " tensors, the table has " +
                std::to_string(m.info.tensors.size()));
  }
  m.n_static = std::min<std::int64_t>(hot, static_cast<std::int64_t>(options.static_fraction * static_cast<double>(slots)));
  m.n_dynamic = slots - m.n_static;
  m.arena.resize(static_cast<std::size_t>(slots) * m.rb);
  m.policy = make_policy(options.policy, m.n_dynamic);
  m.slot_row.assign(static_cast<std::size_t>(m.n_dynamic), -1);
  m.slot_dirty.assign(static_cast<std::size_t>(m.n_dynamic), 0);
  m.static_dirty.assign(static_cast<std::size_t>(m.n_static), 0);
  m.cached = RowMap(static_cast<std::size_t>(m.n_dynamic));

  // Staging pool.
  const std::size_t n_staging = std::max<std::size_t>(1, options.staging_bytes / m.span);
  m.staging.resize(n_staging * m.span);
  m.requests.resize(n_staging);
  m.staging_row.assign(n_staging, -1);
  m.staging_refs.assign(n_staging, 0);
  for (std::size_t i = n_staging; i-- > 0;) m.free_staging.push_back(static_cast<std::int32_t>(i));

  // Static hot set: the hottest rows, interleaved across tensors in the order given, loaded now.
  {
    std::vector<std::int64_t> rows;
    std::vector<std::size_t> next(options.hot_rows.size(), 0);
    for (bool more = true; more && static_cast<std::int64_t>(rows.size()) < m.n_static;) {
      more = false;
      for (std::size_t t = 0; t < options.hot_rows.size() && static_cast<std::int64_t>(rows.size()) < m.n_static; ++t) {
        if (next[t] >= options.hot_rows[t].size()) continue;
        more = true;
        const std::int64_t r = options.hot_rows[t][next[t]++];
        m.check_rows(static_cast<int>(t), &r, 1);
        const std::int64_t g = m.base[t] + r;
        if (m.static_slot.find(g) < 0) {
          m.static_slot.set(g, static_cast<std::int64_t>(rows.size()));
          rows.push_back(g);
        }
      }
    }
    m.n_static = static_cast<std::int64_t>(rows.size());
    // Read in file order, coalescing rows whose blocks lie close together into reads of up to 4 MiB (a hot set
    // of a quarter of the table touches most blocks: near-sequential reads beat one 4 KiB read per row).
    std::vector<std::int64_t> order(rows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return rows[a] < rows[b]; });
    Progress progress("load hot rows of " + path, order.size());
    constexpr std::uint64_t kRunBytes = 4u << 20, kGap = 64u << 10;
    const std::size_t wave_runs = std::max<std::size_t>(1, options.staging_bytes / (kRunBytes + kAlign));
    AlignedBuffer runs_buffer(wave_runs * (kRunBytes + kAlign));
    std::vector<ReadRequest> reqs(wave_runs);
    std::size_t next_row = 0;
    while (next_row < order.size()) {
      // Plan up to wave_runs runs: [first row, last row) per run.
      std::vector<std::pair<std::size_t, std::size_t>> runs;
      std::vector<ReadRequest*> batch;
      while (next_row < order.size() && runs.size() < wave_runs) {
        const std::size_t first = next_row;
        const std::uint64_t start = m.offset_of(rows[order[first]]) / kAlign * kAlign;
        std::uint64_t end = m.offset_of(rows[order[first]]) + m.rb;
        std::size_t last = first + 1;
        while (last < order.size()) {
          const std::uint64_t off = m.offset_of(rows[order[last]]);
          if (off > end + kGap || off + m.rb - start > kRunBytes) break;
          end = off + m.rb;
          ++last;
        }
        ReadRequest& r = reqs[runs.size()];
        r.offset = start;
        r.length = static_cast<std::uint32_t>((end - start + kAlign - 1) / kAlign * kAlign);
        r.buffer = runs_buffer.data + runs.size() * (kRunBytes + kAlign);
        batch.push_back(&r);
        runs.emplace_back(first, last);
        next_row = last;
      }
      m.io->submit(batch.data(), batch.size());
      for (std::size_t k = 0; k < runs.size(); ++k) {
        ReadRequest& r = reqs[k];
        const std::int64_t last_row = rows[order[runs[k].second - 1]];
        m.io->wait(&r, static_cast<std::uint32_t>(m.offset_of(last_row) + m.rb - r.offset));
        for (std::size_t i = runs[k].first; i < runs[k].second; ++i) {
          const std::int64_t g = rows[order[i]];
          std::memcpy(m.slot_ptr(order[i]), static_cast<std::uint8_t*>(r.buffer) + (m.offset_of(g) - r.offset), m.rb);
        }
      }
      progress.update(next_row);
    }
    progress.finish();
    // Dynamic slots follow the static ones in the arena.
  }
  return std::unique_ptr<Table>(new Table(std::move(impl)));
}

Ticket Table::prefetch(int tensor, const std::int64_t* rows, std::size_t n) {
  Impl& m = *impl_;
  m.check_rows(tensor, rows, n);
  Ticket ticket;
  ticket.state_ = std::make_unique<Ticket::State>();
  Ticket::State& st = *ticket.state_;
  st.owner = impl_.get();
  st.tensor = tensor;
  st.rows.resize(n);
  const std::int64_t b = m.base[static_cast<std::size_t>(tensor)];
  for (std::size_t i = 0; i < n; ++i) st.rows[i] = b + rows[i];
  if (m.opt.tier == Tier::dram) {
    st.kind.assign(n, kDram);
    return ticket;
  }
  st.kind.resize(n);
  st.where.resize(n);
  std::vector<ReadRequest*> batch;
  std::lock_guard<std::mutex> lock(m.mu);
  constexpr std::size_t kAhead = 8;  // start the hash-map misses of row i + 8 while classifying row i
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      m.static_slot.prefetch(st.rows[i + kAhead]);
      m.policy->prefetch(st.rows[i + kAhead]);
    }
    const std::int64_t g = st.rows[i];
    ++m.stats.lookups;
    std::int64_t s = m.static_slot.find(g);
    if (s >= 0) {
      st.kind[i] = kStatic;
      st.where[i] = s;
      ++m.stats.static_hits;
      continue;
    }
    s = m.policy->lookup(g);
    if (s >= 0) {
      m.policy->pin(s);
      st.kind[i] = kSlot;
      st.where[i] = s;
      ++m.stats.cache_hits;
      continue;
    }
    s = m.in_flight.find(g);
    if (s >= 0) {
      ++m.staging_refs[static_cast<std::size_t>(s)];
      st.kind[i] = kStaging;
      st.where[i] = s;
      ++m.stats.inflight_hits;
      continue;
    }
    ++m.stats.misses;
    if (m.free_staging.empty()) {
      st.kind[i] = kDeferred;
      continue;
    }
    s = m.free_staging.back();
    m.free_staging.pop_back();
    const auto si = static_cast<std::size_t>(s);
    m.staging_row[si] = g;
    m.staging_refs[si] = 1;
    m.in_flight.set(g, s);
    m.prepare_read(m.requests[si], g, m.staging_ptr(s));
    batch.push_back(&m.requests[si]);
    st.kind[i] = kStaging;
    st.where[i] = s;
  }
  m.io->submit(batch.data(), batch.size());
  return ticket;
}

namespace {

// The DRAM tier's gather: rows (+ base) → out, prefetching 16 rows ahead; f32 → f32 and bf16 → bf16 are copies.
// REQUIRES: the caller holds m.rw shared and checked the ids.
template <class Out>
void dram_gather(Table::Impl& m, const std::int64_t* rows, std::int64_t base, std::size_t n, Out* out) {
  const std::size_t rb = m.rb;
  const std::int64_t dim = m.info.dim;
  const DType dtype = m.info.dtype;
  const std::uint8_t* mem = m.memory.data() + static_cast<std::size_t>(base) * rb;
  constexpr std::size_t kAhead = 16;
  auto prefetch_row = [&](std::size_t i) {
    const std::uint8_t* p = mem + static_cast<std::size_t>(rows[i]) * rb;
    for (std::size_t c = 0; c < rb; c += 64) __builtin_prefetch(p + c);
  };
  for (std::size_t i = 0; i < std::min(n, kAhead); ++i) prefetch_row(i);
  const bool copy = (std::is_same_v<Out, float> && dtype == DType::f32) ||
                    (std::is_same_v<Out, std::uint16_t> && dtype == DType::bf16);
  std::vector<float> wide(std::is_same_v<Out, float> ? 0 : static_cast<std::size_t>(dim));
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch_row(i + kAhead);
    const std::uint8_t* row = mem + static_cast<std::size_t>(rows[i]) * rb;
    Out* dst = out + i * static_cast<std::size_t>(dim);
    if (copy) {
      std::memcpy(dst, row, rb);
    } else if constexpr (std::is_same_v<Out, float>) {
      decode_row(dtype, row, dim, dst);
    } else {
      decode_row(dtype, row, dim, wide.data());
      for (std::int64_t k = 0; k < dim; ++k) dst[k] = float_to_bf16(wide[static_cast<std::size_t>(k)]);
    }
  }
  std::lock_guard<std::mutex> lock(m.stats_mu);
  m.stats.lookups += n;
  m.stats.static_hits += n;
}

template <class Out>
void gather_impl(Table::Impl& m, Ticket::State& st, Out* out) {
  if (st.consumed) throw Error("gather: the ticket was already gathered");
  if (st.owner != &m) throw Error("gather: the ticket belongs to another table");
  const std::int64_t dim = m.info.dim;
  const DType dtype = m.info.dtype;
  const std::size_t n = st.rows.size();
  std::vector<float> wide;
  auto emit = [&](std::size_t i, const std::uint8_t* row) {
    if constexpr (std::is_same_v<Out, float>) {
      decode_row(dtype, row, dim, out + i * static_cast<std::size_t>(dim));
    } else {
      if (dtype == DType::bf16) {
        std::memcpy(out + i * static_cast<std::size_t>(dim), row, 2 * static_cast<std::size_t>(dim));
        return;
      }
      wide.resize(static_cast<std::size_t>(dim));
      decode_row(dtype, row, dim, wide.data());
      for (std::int64_t k = 0; k < dim; ++k) out[i * static_cast<std::size_t>(dim) + k] = float_to_bf16(wide[k]);
    }
  };
  std::shared_lock<std::shared_mutex> shared(m.rw);
  if (m.opt.tier == Tier::dram) {
    dram_gather(m, st.rows.data(), 0, n, out);
    st.consumed = true;
    return;
  }
  std::unique_lock<std::mutex> lock(m.mu);
  std::vector<std::size_t> deferred;
  auto row_ptr = [&](std::size_t i) -> const std::uint8_t* {
    switch (st.kind[i]) {
      case kStatic: return m.slot_ptr(st.where[i]);
      case kSlot: return m.dynamic_ptr(st.where[i]);
      default: return nullptr;
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (i + 8 < n) {
      if (const std::uint8_t* p = row_ptr(i + 8)) {
        for (std::size_t c = 0; c < m.rb; c += 64) __builtin_prefetch(p + c);
      }
    }
    const std::int64_t g = st.rows[i];
    switch (st.kind[i]) {
      case kStatic:
        emit(i, m.slot_ptr(st.where[i]));
        break;
      case kSlot:
        emit(i, m.dynamic_ptr(st.where[i]));
        break;
      case kStaging: {
        ReadRequest& r = m.requests[static_cast<std::size_t>(st.where[i])];
        if (!m.io->done(&r)) {
          ++m.stats.late_rows;
          const double t0 = now_seconds();
          lock.unlock();  // let other threads prefetch while this one waits
          m.io->wait(&r, m.need(r, g));
          lock.lock();
          m.stats.late_seconds += now_seconds() - t0;
        } else {
          m.io->wait(&r, m.need(r, g));
        }
        emit(i, m.staging_ptr(st.where[i]) + m.in_block(g));
        break;
      }
      default:
        deferred.push_back(i);
    }
  }
  // Release pins and staging before the deferred waves (they may need the cache slots).
  for (std::size_t i = 0; i < n; ++i) {
    if (st.kind[i] == kSlot) m.policy->unpin(st.where[i]);
    if (st.kind[i] == kStaging) m.release_staging(st.where[i]);
  }
  st.consumed = true;
  if (!deferred.empty()) {
    // The late path: rows that found no staging buffer, read now in waves of queue_depth.
    const std::size_t wave = static_cast<std::size_t>(m.opt.queue_depth);
    AlignedBuffer buffer(wave * m.span);
    std::vector<ReadRequest> reqs(wave);
    for (std::size_t begin = 0; begin < deferred.size(); begin += wave) {
      const std::size_t end = std::min(deferred.size(), begin + wave);
      std::vector<ReadRequest*> batch;
      std::vector<std::int64_t> hit(end - begin, -1);
      for (std::size_t k = begin; k < end; ++k) {
        const std::int64_t g = st.rows[deferred[k]];
        const std::int64_t s = m.cached.find(g);  // admitted by an earlier wave or another ticket meanwhile
        if (s >= 0) {
          emit(deferred[k], m.dynamic_ptr(s));  // now: admissions below may reuse the slot
          hit[k - begin] = s;
          continue;
        }
        m.prepare_read(reqs[k - begin], g, buffer.data + (k - begin) * m.span);
        batch.push_back(&reqs[k - begin]);
      }
      m.io->submit(batch.data(), batch.size());
      m.stats.late_rows += batch.size();
      for (std::size_t k = begin; k < end; ++k) {
        const std::int64_t g = st.rows[deferred[k]];
        if (hit[k - begin] >= 0) continue;
        ReadRequest& r = reqs[k - begin];
        m.io->wait(&r, m.need(r, g));
        const std::uint8_t* row = buffer.data + (k - begin) * m.span + m.in_block(g);
        emit(deferred[k], row);
        m.admit(g, row, false);
      }
    }
  }
}

}  // namespace

void Table::gather(Ticket& ticket, float* out) {
  if (!ticket.state_) throw Error("gather: the ticket is empty");
  gather_impl(*impl_, *ticket.state_, out);
}
void Table::gather(Ticket& ticket, std::uint16_t* out) {
  if (!ticket.state_) throw Error("gather: the ticket is empty");
  gather_impl(*impl_, *ticket.state_, out);
}
void Table::gather(int tensor, const std::int64_t* rows, std::size_t n, float* out) {
  if (impl_->opt.tier == Tier::dram) {  // no ticket needed: check, then copy
    impl_->check_rows(tensor, rows, n);
    std::shared_lock<std::shared_mutex> shared(impl_->rw);
    dram_gather(*impl_, rows, impl_->base[static_cast<std::size_t>(tensor)], n, out);
    return;
  }
  Ticket t = prefetch(tensor, rows, n);
  gather(t, out);
}

void Table::apply_rows(int tensor, const std::int64_t* rows, std::size_t n, const float* grads,
                       const UpdateOptions& options) {
  Impl& m = *impl_;
  if (!m.opt.writable) throw Error("table '" + m.path + "' was opened read-only: apply_rows needs writable = true");
  if (!(options.lr >= 0) || !std::isfinite(options.lr)) throw Error("learning rate must be finite and >= 0");
  const bool adam = options.optimizer == Optimizer::adam;
  if (adam && (options.step < 1 || !(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1) ||
               !(options.eps > 0))) {
    throw Error("Adam needs step >= 1, betas in [0, 1) and eps > 0");
  }
  m.check_rows(tensor, rows, n);
  const std::int64_t dim = m.info.dim;
  const auto d = static_cast<std::size_t>(dim);
  // Sum duplicate rows' gradients (in first-appearance order of the sorted ids, so the result is deterministic).
  // (row, position) pairs sorted: positions ascend within a row, as a stable sort by row would leave them.
  std::vector<std::pair<std::int64_t, std::size_t>> sorted(n);
  for (std::size_t i = 0; i < n; ++i) sorted[i] = {rows[i], i};
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = sorted[i].second;
  std::unique_lock<std::shared_mutex> exclusive(m.rw);
  std::lock_guard<std::mutex> lock(m.mu);
  Impl* moments = nullptr;
  std::unique_lock<std::shared_mutex> moments_exclusive;
  std::unique_lock<std::mutex> moments_lock;
  if (adam) {
    moments = m.adam_moments();
    moments_exclusive = std::unique_lock<std::shared_mutex>(moments->rw);
    moments_lock = std::unique_lock<std::mutex>(moments->mu);
  }
  const float c1 = adam ? 1.0f - std::pow(options.beta1, static_cast<float>(options.step)) : 1.0f;
  const float c2 = adam ? 1.0f - std::pow(options.beta2, static_cast<float>(options.step)) : 1.0f;
  const std::int64_t b = m.base[static_cast<std::size_t>(tensor)];
  // Where each distinct row's run of entries starts in the sorted order (and n at the end).
  std::vector<std::size_t> starts;
  for (std::size_t k = 0; k < n; ++k) {
    if (k == 0 || sorted[k].first != sorted[k - 1].first) starts.push_back(k);
  }
  starts.push_back(n);
  const auto distinct = static_cast<std::int64_t>(starts.size() - 1);
  // Distinct rows [first, last): every row is updated by exactly one caller, so ranges can run in parallel.
  auto update_rows = [&](std::int64_t first, std::int64_t last) {
    std::vector<float> value(d), grad(d), step(d), mv(2 * d);
    constexpr std::int64_t kAhead = 8;  // the row, its moments and its gradients are at random addresses
    for (std::int64_t u = first; u < last; ++u) {
      if (u + kAhead < last) {
        const std::size_t k = starts[static_cast<std::size_t>(u + kAhead)];
        const std::int64_t ahead = b + sorted[k].first;
        m.prefetch_for_update(ahead);
        if (moments) moments->prefetch_for_update(ahead);
        const char* g = reinterpret_cast<const char*>(grads + order[k] * d);
        for (std::size_t c = 0; c < d * sizeof(float); c += 64) __builtin_prefetch(g + c);
      }
      std::fill(grad.begin(), grad.end(), 0.0f);
      for (std::size_t k = starts[static_cast<std::size_t>(u)]; k < starts[static_cast<std::size_t>(u + 1)]; ++k) {
        const float* gsrc = grads + order[k] * d;
        for (std::size_t j = 0; j < d; ++j) grad[j] += gsrc[j];
      }
      const std::int64_t g = b + sorted[starts[static_cast<std::size_t>(u)]].first;
      if (adam) {
        // Per-row moments m, v (f32, interleaved [m | v]) live in a companion table on the same tier.
        moments->update_row(g, [&](std::uint8_t* bytes) {
          // Restrict-qualified locals (not the captured vectors) let the compiler vectorise the loop.
          float* __restrict m1 = mv.data();
          float* __restrict m2 = mv.data() + d;
          const float* __restrict gr = grad.data();
          float* __restrict st = step.data();
          const float b1 = options.beta1, b2 = options.beta2, lr = options.lr, eps = options.eps, k1 = c1, k2 = c2;
          std::memcpy(m1, bytes, 8 * d);
          for (std::size_t j = 0; j < d; ++j) {
            m1[j] = b1 * m1[j] + (1 - b1) * gr[j];
            m2[j] = b2 * m2[j] + (1 - b2) * gr[j] * gr[j];
            st[j] = lr * (m1[j] / k1) / (std::sqrt(m2[j] / k2) + eps);
          }
          std::memcpy(bytes, m1, 8 * d);
        });
      } else {
        for (std::size_t j = 0; j < d; ++j) step[j] = options.lr * grad[j];
      }
      m.update_row(g, [&](std::uint8_t* bytes) {
        decode_row(m.info.dtype, bytes, dim, value.data());
        for (std::size_t j = 0; j < d; ++j) value[j] -= step[j];
        encode_row(m.info.dtype, value.data(), dim, bytes);
      });
    }
  };
  // The DRAM tier updates rows in place, independently: split them over the cores when there are enough to pay
  // for the threads. The SSD tier's updates go through the cache policy and the I/O engine: one thread.
  const bool in_place = m.opt.tier == Tier::dram && (!moments || moments->opt.tier == Tier::dram);
  parallel_for(distinct, in_place && distinct >= 8192 ? 0 : 1, update_rows);
}

void Table::checkpoint() { checkpoint_to(impl_->path); }

void Table::checkpoint_to(const std::string& target) {
  Impl& m = *impl_;
  if (!m.opt.writable) throw Error("table '" + m.path + "' was opened read-only: checkpoint needs writable = true");
  std::unique_lock<std::shared_mutex> exclusive(m.rw);
  // Adam's moments first: a crash between the two files leaves new moments beside old rows, which Adam tolerates
  // (the moments are running averages); the rows themselves are never half-written. Moments on disk that were
  // never loaded (no update since open) are loaded now, so a copy elsewhere carries them too.
  if (!m.moments && target != m.path && ::access((m.path + ".adam").c_str(), F_OK) == 0) m.adam_moments();
  if (m.moments) m.moments->checkpoint_to(target + ".adam");
  if (m.opt.tier == Tier::dram) {
    write_table_file(m.info, target, 0, [&](const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst, int) {
      const std::size_t t_index = static_cast<std::size_t>(&t - m.info.tensors.data());
      std::memcpy(dst, m.memory.data() + static_cast<std::size_t>(m.base[t_index] + first) * m.rb,
                  static_cast<std::size_t>(last - first) * m.rb);
    });
    return;
  }
  std::lock_guard<std::mutex> lock(m.mu);
  // 1. Dirty rows into the working copy.
  for (std::int64_t s = 0; s < m.n_dynamic; ++s) {
    if (m.slot_dirty[static_cast<std::size_t>(s)]) {
      m.write_row_to_file(m.slot_row[static_cast<std::size_t>(s)], m.dynamic_ptr(s));
      m.slot_dirty[static_cast<std::size_t>(s)] = 0;
    }
  }
  // Static rows: find each dirty slot's row (the map is row → slot; walk the hot rows by slot).
  if (std::find(m.static_dirty.begin(), m.static_dirty.end(), 1) != m.static_dirty.end()) {
    std::vector<std::int64_t> slot_to_row(static_cast<std::size_t>(m.n_static), -1);
    for (std::size_t t = 0; t < m.opt.hot_rows.size(); ++t) {
      for (std::int64_t r : m.opt.hot_rows[t]) {
        const std::int64_t g = m.base[t] + r, s = m.static_slot.find(g);
        if (s >= 0) slot_to_row[static_cast<std::size_t>(s)] = g;
      }
    }
    for (std::int64_t s = 0; s < m.n_static; ++s) {
      if (m.static_dirty[static_cast<std::size_t>(s)]) {
        m.write_row_to_file(slot_to_row[static_cast<std::size_t>(s)], m.slot_ptr(s));
        m.static_dirty[static_cast<std::size_t>(s)] = 0;
      }
    }
  }
  if (::fdatasync(m.fd) != 0) throw Error("cannot sync '" + m.data_path + "': " + std::strerror(errno));
  // 2. A fresh file over the target path, read from the working copy in large aligned chunks.
  AlignedBuffer chunk;
  write_table_file(m.info, target, 0, [&](const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst, int) {
    const std::uint64_t begin = t.offset + static_cast<std::uint64_t>(first) * m.rb;
    const std::uint64_t end = t.offset + static_cast<std::uint64_t>(last) * m.rb;
    const std::uint64_t a = begin / kAlign * kAlign;
    const std::uint64_t len = (end - a + kAlign - 1) / kAlign * kAlign;
    if (chunk.size < len) chunk.resize(len);
    std::size_t done = 0;
    while (done < end - a) {
      const ssize_t got = ::pread(m.fd, chunk.data + done, len - done, static_cast<off_t>(a + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw Error("cannot read working copy '" + m.data_path + "'");
      done += static_cast<std::size_t>(got);
    }
    std::memcpy(dst, chunk.data + (begin - a), end - begin);
  });
}

Stats Table::stats() const {
  Impl& m = *impl_;
  std::scoped_lock lock(m.mu, m.stats_mu);
  Stats s = m.stats;
  if (m.io) {
    s.reads += m.io->reads() - m.io_reads_base;
    s.bytes_read += m.io->bytes() - m.io_bytes_base;
    s.max_queue_depth = static_cast<std::uint64_t>(m.io->max_in_flight());
  }
  return s;
}

void Table::reset_stats() {
  Impl& m = *impl_;
  std::scoped_lock lock(m.mu, m.stats_mu);
  const bool direct = m.stats.direct_io;
  m.stats = Stats{};
  m.stats.direct_io = direct;
  if (m.io) {
    m.io_reads_base = m.io->reads();
    m.io_bytes_base = m.io->bytes();
  }
}

}  // namespace hashmem::store
