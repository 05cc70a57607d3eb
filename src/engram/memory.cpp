// engram::Memory (include/hashmem/engram_memory.hpp): tokens → compressed ids → row ids → reads on the table.
#include "hashmem/engram_memory.hpp"

#include <algorithm>
#include <cstring>

#include "hashmem/error.hpp"
#include "hashmem/safetensors.hpp"

namespace hashmem::engram {
namespace {

bool is_identity(const Compression& c) {
  for (std::size_t i = 0; i < c.lookup.size(); ++i) {
    if (c.lookup[i] != static_cast<std::int64_t>(i)) return false;
  }
  return true;
}

// The fingerprint a table records of its compression ("" for the identity: there is no tokenizer to tie it to).
std::string fingerprint(const Compression& c) { return is_identity(c) ? std::string() : lookup_sha256(c); }

bool same_constants(const Layout& a, const Layout& b) {
  if (a.layers.size() != b.layers.size()) return false;
  for (std::size_t t = 0; t < a.layers.size(); ++t) {
    const LayerLayout &x = a.layers[t], &y = b.layers[t];
    if (x.layer_id != y.layer_id || x.offsets != y.offsets || x.multipliers != y.multipliers || x.rows != y.rows) {
      return false;
    }
  }
  return true;
}

}  // namespace

// ---- Stream ----

Stream::Stream(const Layout& layout, std::int64_t batch) : batch_(batch) {
  if (batch < 1) throw Error("an Engram stream needs batch >= 1, got " + std::to_string(batch));
  for (std::size_t t = 0; t < layout.layers.size(); ++t) {
    hashers_.push_back(std::make_unique<StreamingHasher>(layout, t, batch, /*add_offsets=*/true));
  }
}
Stream::~Stream() = default;
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;

void Stream::reset() {
  for (auto& h : hashers_) h->reset();
}

// ---- Memory ----

Memory::Memory(Layout layout, std::int64_t row_dim, Compression compression)
    : layout_(std::move(layout)), row_dim_(row_dim), compression_(std::move(compression)) {
  if (row_dim_ < 1) throw Error("Engram memory: row_dim must be >= 1, got " + std::to_string(row_dim_));
  if (compression_.tokenizer_entries != static_cast<std::int64_t>(compression_.lookup.size())) {
    throw Error("Engram memory: the compression has " + std::to_string(compression_.lookup.size()) +
                " lookup entries for a tokenizer of " + std::to_string(compression_.tokenizer_entries));
  }
  if (compression_.compressed_vocab != layout_.config.compressed_vocab) {
    throw Error("Engram memory: the compression makes " + std::to_string(compression_.compressed_vocab) +
                " compressed ids, the Engram config expects " + std::to_string(layout_.config.compressed_vocab));
  }
  counts_.resize(layout_.layers.size());
  for (std::size_t t = 0; t < counts_.size(); ++t) counts_[t].assign(static_cast<std::size_t>(layout_.layers[t].rows), 0);
}

Memory::~Memory() = default;

void Memory::create(const std::string& path, std::uint64_t seed, float stddev) const {
  store::CreateOptions co;
  co.config = layout_.config;
  co.dim = row_dim_;
  co.dtype = store::DType::f32;
  co.init = store::Init::normal;
  co.stddev = stddev;
  co.seed = seed;
  co.compression_sha256 = fingerprint(compression_);
  store::create_table(co, path);
}

void Memory::open(const std::string& path, const store::OpenOptions& options) {
  // A file is checked before it is opened (a hot set may take a while to load); a cluster's header is the table's.
  const bool on_cluster = options.tier == store::Tier::cluster;
  if (!on_cluster) check_table(store::read_info(path));
  std::shared_ptr<store::Table> table = store::Table::open(path, options);
  if (on_cluster) check_table(table->info());
  table_ = std::move(table);
}

void Memory::open(std::shared_ptr<store::Table> table) {
  if (!table) throw Error("Engram memory: open() given no table");
  check_table(table->info());
  table_ = std::move(table);
}

void Memory::check_table(const store::TableInfo& info) const {
  const std::string& path = info.path;
  if (info.dim != row_dim_ || !same_constants(make_layout(info.config), layout_)) {
    throw Error("Engram table '" + path + "' does not match this memory's config (layers, primes or row width differ)");
  }
  const auto recorded = info.metadata.find("compression_lookup_sha256");
  const std::string ours = fingerprint(compression_);
  if (recorded != info.metadata.end() && !ours.empty() && recorded->second != ours) {
    throw Error("Engram table '" + path + "' was made for another tokenizer compression (lookup SHA-256 " +
                recorded->second + ", this memory's is " + ours + ")");
  }
}

Stream Memory::stream(std::int64_t batch) const { return Stream(layout_, batch); }

Lookup Memory::lookup(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, Stream* stream, bool count) {
  if (stream && stream->batch() != batch) {
    throw Error("Engram lookup: a stream of " + std::to_string(stream->batch()) + " sequences given " +
                std::to_string(batch));
  }
  return start(ids, batch, seq, [&](std::size_t t, const std::int64_t* compressed, std::int64_t* rows) {
    if (stream) {
      stream->hashers_[t]->push(compressed, seq, rows);
    } else {
      hash_batch(layout_, t, compressed, batch, seq, rows, /*add_offsets=*/true);
    }
  }, count);
}

Lookup Memory::lookup_streams(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, Stream* const* streams,
                              bool count) {
  for (std::int64_t b = 0; b < batch; ++b) {
    if (streams[b] == nullptr || streams[b]->batch() != 1) {
      throw Error("Engram lookup: stream " + std::to_string(b) + " must be a stream of one sequence");
    }
  }
  const auto width = static_cast<std::size_t>(seq * columns());
  return start(ids, batch, seq, [&](std::size_t t, const std::int64_t* compressed, std::int64_t* rows) {
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto at = static_cast<std::size_t>(b);
      streams[b]->hashers_[t]->push(compressed + at * static_cast<std::size_t>(seq), seq, rows + at * width);
    }
  }, count);
}

Lookup Memory::start(const std::int64_t* ids, std::int64_t batch, std::int64_t seq, const HashFn& hash, bool count) {
  if (!table_) throw Error("Engram memory: lookup before open()");
  if (batch < 0 || seq < 0) throw Error("Engram lookup: batch and seq must be >= 0");
  const auto n = static_cast<std::size_t>(batch * seq);
  compressed_.resize(n);
  compress_ids(compression_, ids, n, compressed_.data());
  Lookup l;
  l.batch = batch;
  l.seq = seq;
  l.rows.resize(layout_.layers.size());
  for (std::size_t t = 0; t < l.rows.size(); ++t) {
    std::vector<std::int64_t>& rows = l.rows[t];
    rows.resize(n * static_cast<std::size_t>(columns()));
    hash(t, compressed_.data(), rows.data());
    if (count) {
      std::vector<std::uint32_t>& c = counts_[t];
      for (std::int64_t r : rows) {
        std::uint32_t& k = c[static_cast<std::size_t>(r)];
        if (k != UINT32_MAX) ++k;
      }
    }
    l.tickets.push_back(table_->prefetch(static_cast<int>(t), rows.data(), rows.size()));
  }
  return l;
}

void Memory::gather(Lookup& l, std::size_t tensor, float* out) {
  if (tensor >= l.tickets.size()) throw Error("Engram gather: tensor " + std::to_string(tensor) + " out of range");
  table_->gather(l.tickets[tensor], out);
}

void Memory::gather(Lookup& l, std::size_t tensor, std::uint16_t* out_bf16) {
  if (tensor >= l.tickets.size()) throw Error("Engram gather: tensor " + std::to_string(tensor) + " out of range");
  table_->gather(l.tickets[tensor], out_bf16);
}

void Memory::update(const Lookup& l, std::size_t tensor, const float* grads, const store::UpdateOptions& options) {
  if (tensor >= l.rows.size()) throw Error("Engram update: tensor " + std::to_string(tensor) + " out of range");
  table_->apply_rows(static_cast<int>(tensor), l.rows[tensor].data(), l.rows[tensor].size(), grads, options);
}

// ---- the access profile ----

void Memory::write_profile(const std::string& path) const {
  std::vector<TensorView> views;
  for (std::size_t t = 0; t < counts_.size(); ++t) {
    views.push_back({"counts." + std::to_string(layout_.layers[t].layer_id), "U32",
                     {static_cast<std::int64_t>(counts_[t].size())}, counts_[t].data()});
  }
  write_safetensors(path, views, {{"format", "hashmem-row-profile"}});
}

void Memory::read_profile(const std::string& path) {
  const SafetensorsFile file(path);
  for (std::size_t t = 0; t < counts_.size(); ++t) {
    const auto& e = file.get("counts." + std::to_string(layout_.layers[t].layer_id), "U32",
                             {static_cast<std::int64_t>(counts_[t].size())});
    std::memcpy(counts_[t].data(), e.data, e.bytes);
  }
}

std::vector<std::vector<std::int64_t>> Memory::hot_rows(std::int64_t total) const {
  struct Hot {
    std::uint32_t count;
    std::uint32_t tensor;
    std::int64_t row;
  };
  std::vector<Hot> all;
  for (std::size_t t = 0; t < counts_.size(); ++t) {
    for (std::size_t r = 0; r < counts_[t].size(); ++r) {
      if (counts_[t][r]) all.push_back({counts_[t][r], static_cast<std::uint32_t>(t), static_cast<std::int64_t>(r)});
    }
  }
  const std::size_t n = std::min<std::size_t>(all.size(), static_cast<std::size_t>(std::max<std::int64_t>(total, 0)));
  // Hottest first; ties by (tensor, row) so the set does not depend on the sort's whims.
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), [](const Hot& a, const Hot& b) {
    return a.count != b.count ? a.count > b.count : (a.tensor != b.tensor ? a.tensor < b.tensor : a.row < b.row);
  });
  std::vector<std::vector<std::int64_t>> out(counts_.size());
  for (std::size_t i = 0; i < n; ++i) out[all[i].tensor].push_back(all[i].row);
  return out;
}

}  // namespace hashmem::engram
