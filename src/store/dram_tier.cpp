// The DRAM tier: every row of the table in memory (2 MiB pages), loaded at open. Gathers are copy loops that start
// the cache misses of rows 16 ahead; updates change rows in place and may run on several threads (distinct rows).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <unistd.h>

#include "common/file_io.hpp"
#include "common/huge_pages.hpp"
#include "hashmem/error.hpp"
#include "hashmem/progress.hpp"
#include "store/tier_backend.hpp"

namespace hashmem::store {
namespace {

class DramTier final : public TierBackend {
 public:
  DramTier(const std::string& path, const TableInfo& info) : rb_(info.row_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot open table '" + path + "': " + std::strerror(errno));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    try {
      memory_.resize(info.data_bytes());
      Progress progress("load " + path, memory_.size());
      for (std::uint64_t done = 0; done < memory_.size();) {
        const std::size_t want = std::min<std::uint64_t>(memory_.size() - done, 64u << 20);
        read_exact(fd, info.header_bytes + done, memory_.data() + done, want, path);
        done += want;
        progress.update(done);
      }
      progress.finish();
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }

  void prefetch(Ticket::State& st) override { st.kind.assign(st.rows.size(), kResident); }

  void gather(Ticket::State& st, RowSink& sink) override {
    st.consumed = true;
    gather_now(st.rows.data(), st.rows.size(), sink);
  }

  void gather_now(const std::int64_t* rows, std::size_t n, RowSink& sink) override {
    constexpr std::size_t kAhead = 16;
    auto start_misses = [&](std::size_t i) {
      const std::uint8_t* p = row_ptr(rows[i]);
      for (std::size_t c = 0; c < rb_; c += 64) __builtin_prefetch(p + c);
    };
    for (std::size_t i = 0; i < std::min(n, kAhead); ++i) start_misses(i);
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) start_misses(i + kAhead);
      sink.row(i, row_ptr(rows[i]));
    }
    std::lock_guard<std::mutex> lock(stats_mu_);  // gathers run in parallel
    stats_.lookups += n;
    stats_.static_hits += n;
  }

  void release(Ticket::State& st) noexcept override { st.consumed = true; }

  std::uint8_t* begin_update(std::int64_t g) override { return row_ptr(g); }
  void end_update(std::int64_t) override {}
  void prefetch_for_update(std::int64_t g) const override {
    // An update touches rows at random: without this the misses serialise.
    const std::uint8_t* p = row_ptr(g);
    for (std::size_t c = 0; c < rb_; c += 64) __builtin_prefetch(p + c, 1);
  }
  bool parallel_updates() const override { return true; }

  void flush() override {}
  void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) override {
    std::memcpy(out, row_ptr(first), static_cast<std::size_t>(n) * rb_);
  }

  Stats stats() const override {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }
  void reset_stats() override {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_ = Stats{};
  }

 private:
  std::uint8_t* row_ptr(std::int64_t g) { return memory_.data() + static_cast<std::size_t>(g) * rb_; }
  const std::uint8_t* row_ptr(std::int64_t g) const { return memory_.data() + static_cast<std::size_t>(g) * rb_; }

  std::size_t rb_;
  HugeVector<std::uint8_t> memory_;
  mutable std::mutex stats_mu_;
  Stats stats_;
};

}  // namespace

std::unique_ptr<TierBackend> make_dram_tier(const std::string& path, const TableInfo& info) {
  return std::make_unique<DramTier>(path, info);
}

}  // namespace hashmem::store
