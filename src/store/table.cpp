// store::Table: opening a table on a tier, prefetch and gather (argument checks, decoding into the caller's dtype),
// stats. Where rows live is the TierBackend's business (tier_backend.hpp); updates are in update.cpp, checkpoints in
// checkpoint.cpp.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "cluster/cluster_device.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/store.hpp"
#include "store/row_map.hpp"
#include "store/table_impl.hpp"

namespace hashmem::store {

double Stats::hit_ratio() const {
  return lookups ? static_cast<double>(static_hits + cache_hits + inflight_hits) / static_cast<double>(lookups) : 0.0;
}

Tier parse_tier(const std::string& name) {
  if (name == "dram") return Tier::dram;
  if (name == "ssd") return Tier::ssd;
  if (name == "cluster") return Tier::cluster;
  throw Error("unknown tier '" + name + "' (known: dram, ssd, cluster)");
}

void TierBackend::gather_now(const std::int64_t* rows, std::size_t n, RowSink& sink) {
  Ticket::State st;
  st.owner = this;
  st.rows.assign(rows, rows + n);
  prefetch(st);
  gather(st, sink);
}

void Table::Impl::check_rows(int tensor, const std::int64_t* rows, std::size_t n) const {
  if (tensor < 0 || static_cast<std::size_t>(tensor) >= info.tensors.size()) {
    throw Error("table '" + path + "' has no tensor " + std::to_string(tensor) + " (it has " +
                std::to_string(info.tensors.size()) + ")");
  }
  const TensorInfo& t = info.tensors[static_cast<std::size_t>(tensor)];
  for (std::size_t i = 0; i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= t.rows) {
      throw Error("row id " + std::to_string(rows[i]) + " is outside " + t.name + " of '" + path + "' (rows 0.." +
                  std::to_string(t.rows - 1) + ")");
    }
  }
}

namespace {

// Rows into the caller's dtype: f32 → f32 and bf16 → bf16 are copies.
template <class Out>
class DecodeSink final : public RowSink {
 public:
  DecodeSink(DType dtype, std::int64_t dim, Out* out) : dtype_(dtype), dim_(static_cast<std::size_t>(dim)), out_(out) {
    if constexpr (std::is_same_v<Out, std::uint16_t>) wide_.resize(dim_);
  }
  void row(std::size_t i, const std::uint8_t* bytes) override {
    Out* dst = out_ + i * dim_;
    if constexpr (std::is_same_v<Out, float>) {
      if (dtype_ == DType::f32) {
        std::memcpy(dst, bytes, dim_ * sizeof(float));
      } else {
        decode_row(dtype_, bytes, static_cast<std::int64_t>(dim_), dst);
      }
    } else if (dtype_ == DType::bf16) {
      std::memcpy(dst, bytes, dim_ * sizeof(std::uint16_t));
    } else {
      decode_row(dtype_, bytes, static_cast<std::int64_t>(dim_), wide_.data());
      for (std::size_t k = 0; k < dim_; ++k) dst[k] = float_to_bf16(wide_[k]);
    }
  }

 private:
  DType dtype_;
  std::size_t dim_;
  Out* out_;
  std::vector<float> wide_;
};

// The hot rows of every tensor as global ids, interleaved across tensors in the order given (hottest first), each
// once.
std::vector<std::int64_t> global_hot_rows(const Table::Impl& m) {
  const auto& hot = m.opt.hot_rows;
  if (hot.size() > m.info.tensors.size()) {
    throw Error("hot rows given for " + std::to_string(hot.size()) + " tensors, table '" + m.path + "' has " +
                std::to_string(m.info.tensors.size()));
  }
  for (std::size_t t = 0; t < hot.size(); ++t) m.check_rows(static_cast<int>(t), hot[t].data(), hot[t].size());
  std::vector<std::int64_t> rows;
  std::vector<std::size_t> next(hot.size(), 0);
  RowMap seen(rows.capacity());
  for (bool more = true; more;) {
    more = false;
    for (std::size_t t = 0; t < hot.size(); ++t) {
      if (next[t] >= hot[t].size()) continue;
      more = true;
      const std::int64_t g = m.base[t] + hot[t][next[t]++];
      if (seen.find(g) >= 0) continue;
      seen.set(g, 1);
      rows.push_back(g);
    }
  }
  return rows;
}

}  // namespace

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
  if (state_ && !state_->consumed && state_->owner) state_->owner->release(*state_);
}
std::size_t Ticket::size() const { return state_ ? state_->rows.size() : 0; }

Table::Table(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Table::~Table() = default;

const TableInfo& Table::info() const { return impl_->info; }
const OpenOptions& Table::options() const { return impl_->opt; }

std::unique_ptr<Table> Table::open(const std::string& path, const OpenOptions& options) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.path = path;
  m.opt = options;
  if (options.tier == Tier::cluster) {
    if (options.cluster.empty() || options.name.empty()) throw Error("the cluster tier needs the cluster address and the table's name");
    m.path = "cluster:" + options.name;
    m.info = cluster::read_cluster_info(options.cluster, options.name);
  } else {
    remove_stale_temporaries(path, {".work"});  // what writers killed with -9 left of this table
    m.info = read_info(path);
  }
  std::int64_t at = 0;
  for (const TensorInfo& t : m.info.tensors) {
    m.base.push_back(at);
    at += t.rows;
  }
  if (options.tier == Tier::dram) {
    m.tier = make_dram_tier(path, m.info);
  } else {
    if (options.queue_depth < 1 || options.queue_depth > 4096) {
      throw Error("queue depth must be in [1, 4096], got " + std::to_string(options.queue_depth));
    }
    if (options.tier == Tier::cluster && (options.cluster_io_threads < 1 || options.cluster_io_threads > 64)) {
      throw Error("cluster I/O threads must be in [1, 64], got " + std::to_string(options.cluster_io_threads));
    }
    if (!(options.static_fraction >= 0 && options.static_fraction <= 1)) {
      throw Error("static fraction must be in [0, 1], got " + std::to_string(options.static_fraction));
    }
    const std::vector<std::int64_t> hot = global_hot_rows(m);
    std::unique_ptr<RowDevice> device = options.tier == Tier::cluster
                                            ? cluster::open_cluster_device(options, m.info)
                                            : open_file_device(path, m.info, options.writable, options.queue_depth);
    m.tier = make_cached_tier(std::move(device), m.info, options, hot);
  }
  return std::unique_ptr<Table>(new Table(std::move(impl)));
}

Ticket Table::prefetch(int tensor, const std::int64_t* rows, std::size_t n) {
  Impl& m = *impl_;
  m.check_rows(tensor, rows, n);
  Ticket ticket;
  ticket.state_ = std::make_unique<Ticket::State>();
  Ticket::State& st = *ticket.state_;
  st.owner = m.tier.get();
  st.rows.resize(n);
  const std::int64_t b = m.base[static_cast<std::size_t>(tensor)];
  for (std::size_t i = 0; i < n; ++i) st.rows[i] = b + rows[i];
  m.tier->prefetch(st);
  return ticket;
}

namespace {

template <class Out>
void gather_into(Table::Impl& m, Ticket::State* st, Out* out) {
  if (!st) throw Error("gather: the ticket is empty");
  if (st->consumed) throw Error("gather: the ticket was already gathered");
  if (st->owner != m.tier.get()) throw Error("gather: the ticket belongs to another table");
  DecodeSink<Out> sink(m.info.dtype, m.info.dim, out);
  std::shared_lock<std::shared_mutex> shared(m.rw);
  m.tier->gather(*st, sink);
}

}  // namespace

void Table::gather(Ticket& ticket, float* out) { gather_into(*impl_, ticket.state_.get(), out); }
void Table::gather(Ticket& ticket, std::uint16_t* out) { gather_into(*impl_, ticket.state_.get(), out); }

void Table::gather(int tensor, const std::int64_t* rows, std::size_t n, float* out) {
  Impl& m = *impl_;
  m.check_rows(tensor, rows, n);
  // Row ids of tensor 0 are global ids already; other tensors' are shifted by the rows before them.
  const std::int64_t b = m.base[static_cast<std::size_t>(tensor)];
  std::vector<std::int64_t> global;
  if (b != 0) {
    global.assign(rows, rows + n);
    for (auto& g : global) g += b;
    rows = global.data();
  }
  DecodeSink<float> sink(m.info.dtype, m.info.dim, out);
  std::shared_lock<std::shared_mutex> shared(m.rw);
  m.tier->gather_now(rows, n, sink);
}

Stats Table::stats() const { return impl_->tier->stats(); }
void Table::reset_stats() { impl_->tier->reset_stats(); }

}  // namespace hashmem::store
