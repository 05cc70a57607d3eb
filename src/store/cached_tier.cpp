// The cached tier: a DRAM hot cache, staging buffers and prefetch tickets in front of a RowDevice (the SSD tier is
// this over the table file).
//
// Per row of a prefetch (under mu_):
//   static hot set hit → emitted from its slot at gather;  dynamic cache hit → the slot is pinned until gather;
//   a read already in flight for the row → its staging buffer is shared;  else a staging buffer is taken and the
//   row's read started;  no buffer free (the staging bound) → "deferred": read at gather in waves of queue_depth
//   through a private buffer (the late path: correct, just slower).
// At gather the staged rows are emitted, then offered to the cache policy (admitted, possibly evicting a dirty
// row, which is written back first) and their buffers freed when no other ticket shares them.
// Updates: a row's current bytes are found in the static set, a cache slot, a staging buffer or the device; the new
// bytes go to the same place and, when the row was not cached, into the cache as dirty (written through when the
// policy refuses it); staging buffers holding the row are patched so tickets in flight stay current.
//
// Failures: a failed read fails the gathers that wait for it, and only them: the ticket's pins and buffers are
// released, the failed buffer is never admitted and a later prefetch of the row reads it anew. A dirty row whose
// write-back fails stays in its slot (the admission that evicted it is undone), so no update is lost; the error
// reaches the caller when it was an update's, and is counted (Stats::write_errors) when a gather's admission
// triggered it — the next checkpoint then reports it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "common/huge_pages.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/progress.hpp"
#include "store/cache_policy.hpp"
#include "store/row_map.hpp"
#include "store/tier_backend.hpp"

namespace hashmem::store {
namespace {

// Read buffers: `count` buffers of `span` bytes, the first 4096-aligned (the file device's spans are whole blocks;
// the cluster device's are rows, so the total is rounded up: aligned_alloc wants a multiple of the alignment).
struct Buffers {
  std::uint8_t* data = nullptr;
  Buffers(std::size_t count, std::size_t span) {
    const std::size_t bytes = std::max<std::size_t>((count * span + 4095) / 4096 * 4096, 4096);
    data = static_cast<std::uint8_t*>(std::aligned_alloc(4096, bytes));
    if (!data) throw std::bad_alloc();
  }
  ~Buffers() { std::free(data); }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
};

class CachedTier final : public TierBackend {
 public:
  CachedTier(std::unique_ptr<RowDevice> device, const TableInfo& info, const OpenOptions& o,
             const std::vector<std::int64_t>& hot)
      : rb_(info.row_bytes), span_(device->span()), queue_depth_(o.queue_depth),
        n_staging_(std::max<std::size_t>(1, o.staging_bytes / device->span())), staging_(n_staging_, span_),
        device_(std::move(device)) {
    const auto slots = static_cast<std::int64_t>(o.dram_budget / rb_);
    n_static_ = std::min<std::int64_t>(static_cast<std::int64_t>(hot.size()),
                                       static_cast<std::int64_t>(o.static_fraction * static_cast<double>(slots)));
    n_dynamic_ = slots - n_static_;
    arena_.resize(static_cast<std::size_t>(slots) * rb_);
    policy_ = make_policy(o.policy, n_dynamic_);
    slot_row_.assign(static_cast<std::size_t>(n_dynamic_), -1);
    slot_dirty_.assign(static_cast<std::size_t>(n_dynamic_), 0);
    cached_ = RowMap(static_cast<std::size_t>(n_dynamic_));
    reads_.resize(n_staging_);
    staging_row_.assign(n_staging_, -1);
    staging_refs_.assign(n_staging_, 0);
    staging_failed_.assign(n_staging_, 0);
    for (std::size_t i = n_staging_; i-- > 0;) free_staging_.push_back(static_cast<std::int32_t>(i));
    load_static(std::vector<std::int64_t>(hot.begin(), hot.begin() + n_static_));
    stats_.direct_io = device_->direct_io();
  }

  void prefetch(Ticket::State& st) override;
  void gather(Ticket::State& st, RowSink& sink) override;
  void release(Ticket::State& st) noexcept override;

  void begin_updates() override { update_lock_ = std::unique_lock<std::mutex>(mu_); }
  void end_updates() override { update_lock_ = {}; }
  std::uint8_t* begin_update(std::int64_t g) override;
  void end_update(std::int64_t g) override;

  void flush() override;
  void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    device_->read_range(first, n, out);
  }

  Stats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    Stats s = stats_;
    s.reads += device_->reads() - reads_base_;
    s.bytes_read += device_->bytes_read() - bytes_base_;
    s.max_queue_depth = static_cast<std::uint64_t>(device_->max_in_flight());
    return s;
  }
  void reset_stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = Stats{};
    stats_.direct_io = device_->direct_io();
    reads_base_ = device_->reads();
    bytes_base_ = device_->bytes_read();
  }

 private:
  std::uint8_t* slot_ptr(std::int64_t slot) { return arena_.data() + static_cast<std::size_t>(slot) * rb_; }
  std::uint8_t* dynamic_ptr(std::int64_t slot) { return slot_ptr(n_static_ + slot); }
  std::uint8_t* staging_ptr(std::int64_t i) { return staging_.data + static_cast<std::size_t>(i) * span_; }
  const std::uint8_t* staged_row(std::int64_t i) { return staging_ptr(i) + device_->offset_in(staging_row_[i]); }

  void load_static(std::vector<std::int64_t> rows);
  void wait_staging(std::int64_t s, std::unique_lock<std::mutex>& lock);
  void mark_failed(std::int64_t s);
  void release_staging(std::int64_t s);
  void release_locked(Ticket::State& st) noexcept;
  void read_deferred(const Ticket::State& st, const std::vector<std::size_t>& deferred, RowSink& sink);
  void admit(std::int64_t g, const std::uint8_t* bytes, bool dirty);
  void write_back(std::int64_t g, const std::uint8_t* bytes) {
    device_->write_row(g, bytes);
    ++stats_.writes;
    stats_.bytes_written += rb_;
  }

  const std::size_t rb_, span_;
  const int queue_depth_;
  mutable std::mutex mu_;  // everything below
  std::unique_lock<std::mutex> update_lock_;
  HugeVector<std::uint8_t> arena_;  // cache slots: [0, n_static_) static, then dynamic
  std::int64_t n_static_ = 0, n_dynamic_ = 0;
  RowMap static_slot_;                    // global row → static slot
  std::vector<std::int64_t> static_rows_; // static slot → global row
  std::vector<std::uint8_t> static_dirty_;
  std::unique_ptr<CachePolicy> policy_;
  std::vector<std::int64_t> slot_row_;    // dynamic slot → global row (−1 free)
  std::vector<std::uint8_t> slot_dirty_;
  RowMap cached_;                         // global row → dynamic slot (mirror of the policy, without touching it)
  // Staging: one buffer per row read in flight.
  const std::size_t n_staging_;
  Buffers staging_;
  std::vector<RowRead> reads_;
  std::vector<std::int64_t> staging_row_;   // global row, −1 when free
  std::vector<std::int32_t> staging_refs_;  // tickets sharing the buffer
  std::vector<std::uint8_t> staging_failed_;
  std::vector<std::int32_t> free_staging_;
  RowMap in_flight_;                        // global row → staging index of its (unfailed) read
  std::vector<std::uint8_t> scratch_;       // begin_update's copy of an uncached row
  std::int64_t scratch_row_ = -1;
  Stats stats_;
  std::uint64_t reads_base_ = 0, bytes_base_ = 0;
  // Last: destroyed first, so reads in flight finish before the buffers they fill are freed.
  std::unique_ptr<RowDevice> device_;
};

// The static hot set, read in file order through the device's batched reads.
void CachedTier::load_static(std::vector<std::int64_t> rows) {
  static_rows_ = rows;
  static_dirty_.assign(rows.size(), 0);
  for (std::size_t s = 0; s < rows.size(); ++s) static_slot_.set(rows[s], static_cast<std::int64_t>(s));
  std::vector<std::int64_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return rows[a] < rows[b]; });
  std::vector<std::int64_t> sorted(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) sorted[i] = rows[static_cast<std::size_t>(order[i])];
  Progress progress("load hot rows of " + device_->name(), sorted.size());
  std::size_t loaded = 0;
  device_->read_rows(sorted.data(), sorted.size(), [&](std::size_t i, const std::uint8_t* bytes) {
    std::memcpy(slot_ptr(order[i]), bytes, rb_);
    if ((++loaded & 4095) == 0) progress.update(loaded);
  });
  progress.finish();
}

void CachedTier::prefetch(Ticket::State& st) {
  const std::size_t n = st.rows.size();
  st.kind.resize(n);
  st.where.resize(n);
  std::vector<RowRead*> batch;
  std::lock_guard<std::mutex> lock(mu_);
  constexpr std::size_t kAhead = 8;  // start the hash-map misses of row i + 8 while classifying row i
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      static_slot_.prefetch(st.rows[i + kAhead]);
      policy_->prefetch(st.rows[i + kAhead]);
    }
    const std::int64_t g = st.rows[i];
    ++stats_.lookups;
    std::int64_t s = static_slot_.find(g);
    if (s >= 0) {
      st.kind[i] = kStatic;
      st.where[i] = s;
      ++stats_.static_hits;
      continue;
    }
    s = policy_->lookup(g);
    if (s >= 0) {
      policy_->pin(s);
      st.kind[i] = kSlot;
      st.where[i] = s;
      ++stats_.cache_hits;
      continue;
    }
    s = in_flight_.find(g);
    if (s >= 0) {
      ++staging_refs_[static_cast<std::size_t>(s)];
      st.kind[i] = kStaging;
      st.where[i] = s;
      ++stats_.inflight_hits;
      continue;
    }
    ++stats_.misses;
    if (free_staging_.empty()) {
      st.kind[i] = kDeferred;
      continue;
    }
    s = free_staging_.back();
    free_staging_.pop_back();
    const auto si = static_cast<std::size_t>(s);
    staging_row_[si] = g;
    staging_refs_[si] = 1;
    staging_failed_[si] = 0;
    in_flight_.set(g, s);
    device_->prepare(reads_[si], g, staging_ptr(s));
    batch.push_back(&reads_[si]);
    st.kind[i] = kStaging;
    st.where[i] = s;
  }
  device_->submit(batch.data(), batch.size());
}

// Waits for staging read s; the lock is let go meanwhile so other threads can prefetch. Throws when it failed.
void CachedTier::wait_staging(std::int64_t s, std::unique_lock<std::mutex>& lock) {
  RowRead& r = reads_[static_cast<std::size_t>(s)];
  const bool late = !device_->done(r);
  const double t0 = late ? now_seconds() : 0;
  if (late) {
    ++stats_.late_rows;
    lock.unlock();
  }
  std::exception_ptr failure;
  try {
    device_->wait(r);
  } catch (...) {
    failure = std::current_exception();
  }
  if (late) {
    lock.lock();
    stats_.late_seconds += now_seconds() - t0;
  }
  if (failure) {
    mark_failed(s);
    std::rethrow_exception(failure);
  }
}

// A failed read is never admitted, and a later prefetch of its row starts a new one.
void CachedTier::mark_failed(std::int64_t s) {
  const auto i = static_cast<std::size_t>(s);
  staging_failed_[i] = 1;
  if (in_flight_.find(staging_row_[i]) == s) in_flight_.erase(staging_row_[i]);
}

void CachedTier::release_staging(std::int64_t s) {
  const auto i = static_cast<std::size_t>(s);
  if (--staging_refs_[i] > 0) return;
  const std::int64_t g = staging_row_[i];
  if (in_flight_.find(g) == s) in_flight_.erase(g);
  if (!staging_failed_[i]) admit(g, staged_row(s), false);
  staging_row_[i] = -1;
  free_staging_.push_back(static_cast<std::int32_t>(s));
}

// Unpins and releases what the ticket holds. REQUIRES: mu_ held.
void CachedTier::release_locked(Ticket::State& st) noexcept {
  for (std::size_t i = 0; i < st.rows.size(); ++i) {
    if (st.kind[i] == kSlot) policy_->unpin(st.where[i]);
    if (st.kind[i] == kStaging) {
      RowRead& r = reads_[static_cast<std::size_t>(st.where[i])];
      try {
        device_->wait(r);  // the buffer must not be reused mid-read
      } catch (const Error&) {
        mark_failed(st.where[i]);
      }
      release_staging(st.where[i]);
    }
  }
  st.consumed = true;
}

void CachedTier::release(Ticket::State& st) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  release_locked(st);
}

void CachedTier::gather(Ticket::State& st, RowSink& sink) {
  const std::size_t n = st.rows.size();
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<std::size_t> deferred;
  auto resident = [&](std::size_t i) -> const std::uint8_t* {
    switch (st.kind[i]) {
      case kStatic: return slot_ptr(st.where[i]);
      case kSlot: return dynamic_ptr(st.where[i]);
      default: return nullptr;
    }
  };
  std::exception_ptr failure;
  try {
    for (std::size_t i = 0; i < n; ++i) {
      if (i + 8 < n) {
        if (const std::uint8_t* p = resident(i + 8)) {
          for (std::size_t c = 0; c < rb_; c += 64) __builtin_prefetch(p + c);
        }
      }
      if (const std::uint8_t* p = resident(i)) {
        sink.row(i, p);
      } else if (st.kind[i] == kStaging) {
        wait_staging(st.where[i], lock);
        sink.row(i, staged_row(st.where[i]));
      } else {
        deferred.push_back(i);
      }
    }
  } catch (...) {
    failure = std::current_exception();
  }
  // Pins and staging go before the deferred waves (they may need the cache slots), and also after a failure.
  release_locked(st);
  if (failure) std::rethrow_exception(failure);
  if (!deferred.empty()) read_deferred(st, deferred, sink);
}

// The late path: rows that found no staging buffer, read now in waves of queue_depth.
void CachedTier::read_deferred(const Ticket::State& st, const std::vector<std::size_t>& deferred, RowSink& sink) {
  const auto wave = static_cast<std::size_t>(queue_depth_);
  Buffers buffer(wave, span_);
  std::vector<RowRead> reads(wave);
  for (std::size_t begin = 0; begin < deferred.size(); begin += wave) {
    const std::size_t end = std::min(deferred.size(), begin + wave);
    std::vector<RowRead*> batch;
    std::vector<bool> hit(end - begin, false);
    for (std::size_t k = begin; k < end; ++k) {
      const std::int64_t g = st.rows[deferred[k]];
      const std::int64_t s = cached_.find(g);  // admitted by an earlier wave or another ticket meanwhile
      if (s >= 0) {
        sink.row(deferred[k], dynamic_ptr(s));  // now: admissions below may reuse the slot
        hit[k - begin] = true;
        continue;
      }
      device_->prepare(reads[k - begin], g, buffer.data + (k - begin) * span_);
      batch.push_back(&reads[k - begin]);
    }
    device_->submit(batch.data(), batch.size());
    stats_.late_rows += batch.size();
    for (std::size_t k = begin; k < end; ++k) {
      if (hit[k - begin]) continue;
      RowRead& r = reads[k - begin];
      try {
        device_->wait(r);
      } catch (const Error&) {
        for (RowRead* other : batch) {  // the buffer outlives no read
          try {
            device_->wait(*other);
          } catch (const Error&) {
          }
        }
        throw;
      }
      const std::uint8_t* row = static_cast<const std::uint8_t*>(r.io.buffer) + device_->offset_in(r.row);
      sink.row(deferred[k], row);
      admit(r.row, row, false);
    }
  }
}

// Offers a row to the dynamic cache; an evicted dirty row is written back first. A dirty row the cache refuses is
// written through. Throws only for a dirty row that could be neither cached nor written.
void CachedTier::admit(std::int64_t g, const std::uint8_t* bytes, bool dirty) {
  if (cached_.find(g) >= 0) return;
  std::int64_t evicted = -1;
  const std::int64_t slot = policy_->admit(g, &evicted);
  if (slot < 0) {
    if (dirty) write_back(g, bytes);
    return;
  }
  const auto s = static_cast<std::size_t>(slot);
  if (slot_row_[s] >= 0) {
    if (slot_dirty_[s]) {
      try {
        write_back(slot_row_[s], dynamic_ptr(slot));
      } catch (const Error&) {
        policy_->replace(slot, slot_row_[s]);  // the dirty row keeps its slot: nothing is lost
        ++stats_.write_errors;
        if (dirty) write_back(g, bytes);  // the new row cannot be cached: write it through, or fail
        return;
      }
    }
    cached_.erase(slot_row_[s]);
  }
  std::memcpy(dynamic_ptr(slot), bytes, rb_);
  slot_row_[s] = g;
  slot_dirty_[s] = dirty;
  cached_.set(g, slot);
}

std::uint8_t* CachedTier::begin_update(std::int64_t g) {
  std::int64_t s = static_slot_.find(g);
  if (s >= 0) {
    static_dirty_[static_cast<std::size_t>(s)] = 1;
    return slot_ptr(s);
  }
  if ((s = cached_.find(g)) >= 0) {
    slot_dirty_[static_cast<std::size_t>(s)] = 1;
    return dynamic_ptr(s);
  }
  scratch_.resize(rb_);
  const std::int64_t st = in_flight_.find(g);
  if (st >= 0) {
    wait_staging(st, update_lock_);
    std::memcpy(scratch_.data(), staged_row(st), rb_);
  } else {
    device_->read_row(g, scratch_.data());
  }
  scratch_row_ = g;
  return scratch_.data();
}

void CachedTier::end_update(std::int64_t g) {
  if (scratch_row_ != g) return;  // updated in its static or cache slot
  scratch_row_ = -1;
  admit(g, scratch_.data(), true);
  const std::int64_t st = in_flight_.find(g);
  if (st >= 0) std::memcpy(staging_ptr(st) + device_->offset_in(g), scratch_.data(), rb_);
}

void CachedTier::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  for (std::int64_t s = 0; s < n_dynamic_; ++s) {
    if (slot_dirty_[static_cast<std::size_t>(s)]) {
      write_back(slot_row_[static_cast<std::size_t>(s)], dynamic_ptr(s));
      slot_dirty_[static_cast<std::size_t>(s)] = 0;
    }
  }
  for (std::int64_t s = 0; s < n_static_; ++s) {
    if (static_dirty_[static_cast<std::size_t>(s)]) {
      write_back(static_rows_[static_cast<std::size_t>(s)], slot_ptr(s));
      static_dirty_[static_cast<std::size_t>(s)] = 0;
    }
  }
  device_->sync();
}

}  // namespace

std::unique_ptr<TierBackend> make_cached_tier(std::unique_ptr<RowDevice> device, const TableInfo& info,
                                              const OpenOptions& options, const std::vector<std::int64_t>& hot_rows) {
  return std::make_unique<CachedTier>(std::move(device), info, options, hot_rows);
}

}  // namespace hashmem::store
