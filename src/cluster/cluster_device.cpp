#include "cluster/cluster_device.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <hiredis/hiredis.h>
#include <mutex>
#include <thread>

#include "cluster/client.hpp"
#include "cluster/table_keys.hpp"
#include "hashmem/error.hpp"
#include "store/format_internal.hpp"

namespace hashmem::cluster {

std::vector<Endpoint> parse_seeds(const std::string& text) {
  std::vector<Endpoint> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string one = text.substr(at, comma - at);
    const std::size_t colon = one.rfind(':');
    char* end = nullptr;
    const long port = colon == std::string::npos ? 0 : std::strtol(one.c_str() + colon + 1, &end, 10);
    if (colon == std::string::npos || colon == 0 || port < 1 || port > 65535 || *end != '\0') {
      throw Error("'" + text + "' is not a cluster address (HOST:PORT[,HOST:PORT...])");
    }
    out.push_back({one.substr(0, colon), static_cast<int>(port)});
    at = comma + 1;
  }
  return out;
}

namespace {

std::string reply_text(const Reply& r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string(r->str, r->len) : "";
}

ClientOptions client_options(const std::string& seeds, double retry_seconds = 15, bool replica_reads = false) {
  ClientOptions o;
  o.seeds = parse_seeds(seeds);
  o.retry_seconds = retry_seconds;
  o.read_from_replicas = replica_reads;
  return o;
}

class ClusterDevice final : public store::RowDevice {
 public:
  ClusterDevice(const store::OpenOptions& o, const store::TableInfo& info)
      : name_("cluster " + o.cluster + " table " + o.name), table_(o.name), info_(info), rb_(info.row_bytes),
        batch_(static_cast<std::size_t>(std::max(o.queue_depth, 1))),
        io_threads_(static_cast<std::size_t>(std::max(o.cluster_io_threads, 1))),
        sync_client_(client_options(o.cluster, o.cluster_retry_seconds)) {
    for (std::size_t i = 0; i < io_threads_; ++i) {
      io_clients_.push_back(std::make_unique<ClusterClient>(
          client_options(o.cluster, o.cluster_retry_seconds, o.cluster_replica_reads)));
    }
    for (std::size_t i = 0; i < io_threads_; ++i) threads_.emplace_back([this, i] { loop(*io_clients_[i]); });
  }
  ~ClusterDevice() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  const std::string& name() const override { return name_; }
  std::size_t span() const override { return rb_; }
  std::size_t offset_in(std::int64_t) const override { return 0; }

  void prepare(store::RowRead& r, std::int64_t row, void* buffer) const override {
    r.row = row;
    r.io.buffer = buffer;
    r.io.length = static_cast<std::uint32_t>(rb_);
  }
  void submit(store::RowRead* const* reads, std::size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      reads[i]->io.done = false;
      pending_.push_back(reads[i]);
    }
    cv_.notify_one();  // one I/O thread; it wakes the next if it leaves reads behind (fewer wakeups per prefetch)
  }
  void wait(store::RowRead& r) override {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return r.io.done; });
    if (r.io.result < 0) throw Error(failure_ + " (row " + std::to_string(r.row) + " of " + name_ + ")");
  }
  bool done(const store::RowRead& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    return r.io.done;
  }

  void read_row(std::int64_t row, std::uint8_t* out) override {
    read_batch(sync_client_, &row, 1, [&](std::size_t, const std::uint8_t* b) { std::memcpy(out, b, rb_); });
  }
  void write_row(std::int64_t row, const std::uint8_t* bytes) override {
    const auto [key, off] = locate(row);
    sync_client_.run({{{"SETRANGE", key, std::to_string(off), std::string(reinterpret_cast<const char*>(bytes), rb_)}}});
  }
  void read_range(std::int64_t first, std::int64_t n, std::uint8_t* out) override {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = first + i;
    read_rows(rows.data(), rows.size(), [&](std::size_t i, const std::uint8_t* b) { std::memcpy(out + i * rb_, b, rb_); });
  }
  void read_rows(const std::int64_t* rows, std::size_t n,
                 const std::function<void(std::size_t, const std::uint8_t*)>& fn) override {
    constexpr std::size_t kChunk = 8192;
    for (std::size_t at = 0; at < n; at += kChunk) {
      const std::size_t m = std::min(kChunk, n - at);
      read_batch(sync_client_, rows + at, m, [&](std::size_t i, const std::uint8_t* b) { fn(at + i, b); });
    }
  }
  void sync() override {}  // a SETRANGE is applied when it returns; durability is the cluster's (replicas)

  std::uint64_t reads() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }
  std::uint64_t bytes_read() const override { return reads() * rb_; }
  int max_in_flight() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }
  bool direct_io() const override { return true; }

 private:
  std::pair<std::string, std::int64_t> locate(std::int64_t row) const {
    return {block_key(table_, row / kBlockRows), (row % kBlockRows) * static_cast<std::int64_t>(rb_)};
  }

  // GETRANGEs of `n` rows in one pipelined round; fn(i, bytes) for each. Throws Error naming a row that came back
  // short (a table not wholly pushed) or the unreachable slots.
  template <class Fn>
  void read_batch(ClusterClient& client, const std::int64_t* rows, std::size_t n, Fn&& fn, double retry_seconds = -1) {
    std::vector<Command> cmds(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto [key, off] = locate(rows[i]);
      cmds[i].args = {"GETRANGE", key, std::to_string(off), std::to_string(off + static_cast<std::int64_t>(rb_) - 1)};
      cmds[i].read_only = true;
    }
    const std::vector<Reply> replies = client.run(cmds, retry_seconds);
    for (std::size_t i = 0; i < n; ++i) {
      const Reply& r = replies[i];
      if (r->type != REDIS_REPLY_STRING || r->len != rb_) {
        throw Error("row " + std::to_string(rows[i]) + " of " + name_ + " is missing or short on the cluster (" +
                    cmds[i].args[1] + ": " + (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : std::to_string(r->len) + " bytes") +
                    "); push the table again");
      }
      fn(i, reinterpret_cast<const std::uint8_t*>(r->str));
    }
  }

  // One I/O thread: takes a batch of the pending reads, sends it as one pipelined round, marks it done.
  void loop(ClusterClient& client) {
    bool degraded = false;  // the last batch failed
    std::vector<store::RowRead*> batch;
    std::vector<std::int64_t> rows;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
        if (stop_ && pending_.empty()) return;
        batch.clear();
        // Everything that waits (up to a batch): the reads that arrive while it is on the wire go to another
        // thread's batch at once, not after this round trip.
        while (!pending_.empty() && batch.size() < batch_) {
          batch.push_back(pending_.front());
          pending_.pop_front();
        }
        in_flight_ += static_cast<int>(batch.size());
        max_in_flight_ = std::max(max_in_flight_, in_flight_);
        if (!pending_.empty()) cv_.notify_one();
      }
      rows.clear();
      for (store::RowRead* r : batch) rows.push_back(r->row);
      std::string failure;
      try {
        // Once a batch has failed after the whole retry budget (slots no failover brought back), the next ones
        // try for a moment only, so a gather of many rows fails in seconds, not one budget per batch; the first
        // batch that succeeds restores the budget.
        read_batch(client, rows.data(), rows.size(),
                   [&](std::size_t i, const std::uint8_t* b) { std::memcpy(batch[i]->io.buffer, b, rb_); },
                   degraded ? 0.3 : -1);
        degraded = false;
      } catch (const Error& e) {
        failure = e.what();
        degraded = true;
      } catch (const std::bad_alloc&) {
        failure = "out of memory";
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!failure.empty()) failure_ = failure;
        for (store::RowRead* r : batch) {
          r->io.result = failure.empty() ? static_cast<int>(rb_) : -EIO;
          r->io.done = true;
        }
        reads_ += batch.size();
        in_flight_ -= static_cast<int>(batch.size());
      }
      done_cv_.notify_all();
    }
  }

  std::string name_, table_;
  store::TableInfo info_;
  std::size_t rb_;
  std::size_t batch_;
  std::size_t io_threads_;
  std::vector<std::unique_ptr<ClusterClient>> io_clients_;  // one per I/O thread
  ClusterClient sync_client_;  // the synchronous calls' (serialised by the cached tier)
  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<store::RowRead*> pending_;
  std::string failure_;
  std::uint64_t reads_ = 0;
  int in_flight_ = 0, max_in_flight_ = 0;  // rows in the I/O threads' batches
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

TableState table_state(const std::string& seeds, const std::string& name) {
  ClusterClient client(client_options(seeds));
  const std::string state = reply_text(client.run({{{"HGET", meta_key(name), "state"}}})[0]);
  return state.empty() ? TableState::missing : state == "complete" ? TableState::complete : TableState::pushing;
}

store::TableInfo read_cluster_info(const std::string& seeds, const std::string& name) {
  ClusterClient client(client_options(seeds));
  const std::vector<Reply> r = client.run({{{"HGET", meta_key(name), "state"}},
                                           {{"HGET", meta_key(name), "file_bytes"}},
                                           {{"HGET", meta_key(name), "checksums_offset"}},
                                           {{"GET", head_key(name)}},
                                           {{"GET", sums_key(name)}}});
  const std::string where = "table '" + name + "' on cluster " + seeds;
  const std::string state = reply_text(r[0]);
  if (state.empty()) throw Error(where + " does not exist (push it with hashmem table push)");
  if (state != "complete") throw Error(where + " is incomplete (its push stopped midway; run hashmem table push again)");
  std::uint64_t file_bytes = 0, sums_at = 0;
  try {
    file_bytes = std::stoull(reply_text(r[1]));
    sums_at = std::stoull(reply_text(r[2]));
  } catch (const std::logic_error&) {
    throw Error(where + " has a damaged meta key (file_bytes / checksums_offset are not numbers)");
  }
  const std::string head = reply_text(r[3]), sums = reply_text(r[4]);
  const store::ByteReader read = [&](std::uint64_t off, std::size_t size) -> std::string {
    if (off + size <= head.size()) return head.substr(off, size);
    if (off >= sums_at && off + size <= sums_at + sums.size()) return sums.substr(off - sums_at, size);
    throw Error(where + " has no bytes " + std::to_string(off) + ".." + std::to_string(off + size) + " of its header");
  };
  store::TableInfo info = store::parse_header_from("cluster:" + name, read, file_bytes);
  if (sums.size() != file_bytes - info.checksums_offset) throw Error(where + " has a damaged checksum key");
  return info;
}

std::unique_ptr<store::RowDevice> open_cluster_device(const store::OpenOptions& options, const store::TableInfo& info) {
  return std::make_unique<ClusterDevice>(options, info);
}

}  // namespace hashmem::cluster
