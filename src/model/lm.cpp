// The tiny LM's modules, its Engram memory, and dense-weight files (src/model/lm.hpp).
#include "model/lm.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/safetensors.hpp"
#include "hashmem/data.hpp"
#include "torch/attention_autograd.hpp"
#include "torch/engram_autograd.hpp"

namespace hashmem::model {

using torch::Tensor;
namespace F = torch::nn::functional;

RMSNormImpl::RMSNormImpl(std::int64_t dim) { weight = register_parameter("weight", torch::ones({dim})); }

Tensor RMSNormImpl::forward(const Tensor& x) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * weight; }

namespace {

// Rotary position embedding on [B, heads, T, hd]: the two halves of each head rotated by the position's angles.
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

torch::nn::Linear linear(std::int64_t in, std::int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

const Tensor& or_empty(const Tensor& t) {
  static const Tensor empty = torch::empty({0});
  return t.defined() ? t : empty;
}

}  // namespace

BlockImpl::BlockImpl(const Config& c, std::int64_t index_, std::int64_t engram_width)
    : heads(c.heads), dilation(c.engram_max_ngram), kernel(c.engram_kernel), index(index_), config(c) {
  const std::int64_t dim = c.dim, ffn = c.ffn_width();
  n1 = register_module("n1", RMSNorm(dim));
  n2 = register_module("n2", RMSNorm(dim));
  qkv = register_module("qkv", linear(dim, 3 * dim));
  proj = register_module("proj", linear(dim, dim));
  w1 = register_module("w1", linear(dim, ffn));
  w3 = register_module("w3", linear(dim, ffn));
  w2 = register_module("w2", linear(ffn, dim));
  if (c.attention == "mixed") bucket_mix = register_parameter("bucket_mix", torch::ones({c.heads - c.exact_head_count()}));
  if (engram_width <= 0) return;
  has_engram = true;
  const double s = 1.0 / std::sqrt(static_cast<double>(engram_width));
  if (!c.has_ablation("gate")) {
    key_w = register_parameter("engram_key_w", torch::randn({1, dim, engram_width}) * s);
    key_b = register_parameter("engram_key_b", torch::zeros({1, dim}));
    norm1 = register_parameter("engram_norm1", torch::ones({1, dim}));
    norm2 = register_parameter("engram_norm2", torch::ones({1, dim}));
  }
  value_w = register_parameter("engram_value_w", torch::randn({dim, engram_width}) * s);
  value_b = register_parameter("engram_value_b", torch::zeros({dim}));
  if (!c.has_ablation("conv")) {
    conv_norm = register_parameter("engram_conv_norm", torch::ones({1, dim}));
    conv_w = register_parameter("engram_conv_w", torch::zeros({dim, kernel}));  // SPEC §3: the conv starts at zero
  }
}

Tensor BlockImpl::engram(const Tensor& x, const Tensor& e, BlockCache* cache) {
  const std::int64_t B = x.size(0), D = x.size(2);
  Tensor h = x, rows = e;
  std::int64_t keep_from = 0;
  if (cache) {
    // The conv at t reads the (kernel−1)·dilation positions before t: run the layer on those and the new ones.
    if (cache->engram_h.defined()) {
      h = torch::cat({cache->engram_h, x}, 1);
      rows = torch::cat({cache->engram_e, e}, 1);
      keep_from = cache->engram_h.size(1);
    }
    const std::int64_t look_back = conv_w.defined() ? (kernel - 1) * dilation : 0;
    const std::int64_t n = std::min(look_back, h.size(1));
    cache->engram_h = h.narrow(1, h.size(1) - n, n);
    cache->engram_e = rows.narrow(1, rows.size(1) - n, n);
  }
  const Tensor out = hashmem::torch_ops::engram_layer(
      h.reshape({B, h.size(1), 1, D}), rows, or_empty(key_w), or_empty(key_b), value_w, value_b, or_empty(norm1),
      or_empty(norm2), or_empty(conv_norm), or_empty(conv_w), kernel, dilation);
  return out.reshape({B, h.size(1), D}).narrow(1, keep_from, x.size(1));
}

std::vector<Tensor> BlockImpl::qkv_of(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const std::int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  const auto parts = qkv->forward(n1->forward(x)).view({B, T, 3, heads, D / heads}).permute({2, 0, 3, 1, 4});
  return {rope(parts[0], cos, sin), rope(parts[1], cos, sin), parts[2]};
}

Tensor BlockImpl::attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& ids) {
  const Config& c = config;
  const std::int64_t T = q.size(2), hd = q.size(3);
  const auto seed = static_cast<std::int64_t>(index + 1);  // fixed hash functions per block
  auto bucket = [&](const Tensor& qs, const Tensor& ks, const Tensor& vs) {
    const Tensor tokens = c.bucket_key == "token" ? ids.unsqueeze(1).expand({ids.size(0), qs.size(1), T}).contiguous()
                                                  : torch::empty({0}, torch::kInt64);
    return hashmem::torch_ops::attention_bucket(qs, ks, vs, tokens, c.bucket_key, "xxh3", 16, c.bucket_sign_bits,
                                                c.bucket_rounds, /*causal=*/true, seed);
  };
  if (c.attention == "exact") return hashmem::torch_ops::attention_exact(q, k, v, /*causal=*/true, 0.0);
  if (c.attention == "lsh") {  // shared QK: the query projection is the key too
    return hashmem::torch_ops::attention_lsh(q, v, c.lsh_rounds, 0, c.lsh_chunk, /*causal=*/true, seed);
  }
  if (c.attention == "bucket") return bucket(q, k, v);
  if (c.attention == "mixed") {
    const std::int64_t he = c.exact_head_count(), hb = heads - he;
    const Tensor exact = hashmem::torch_ops::attention_exact(q.narrow(1, 0, he), k.narrow(1, 0, he), v.narrow(1, 0, he), true, 0.0);
    const Tensor hashed = bucket(q.narrow(1, he, hb), k.narrow(1, he, hb), v.narrow(1, he, hb)) * bucket_mix.view({1, hb, 1, 1});
    return torch::cat({exact, hashed}, 1);
  }
  // "torch": the softmax from plain libtorch ops, the reference the kernels are checked against.
  const std::int64_t past = k.size(2) - T;
  Tensor att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
  if (T > 1) {  // query i (position past + i) sees keys j <= past + i
    const Tensor mask = torch::ones({T, past + T}, torch::kBool).triu(1 + past);
    att = att.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  return torch::matmul(att.softmax(-1), v);
}

Tensor BlockImpl::forward(Tensor x, const Tensor& e, const Tensor& ids, const Tensor& cos, const Tensor& sin,
                          BlockCache* cache) {
  const std::int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  if (has_engram && e.defined()) x = x + engram(x, e, cache);
  auto qkv_parts = qkv_of(x, cos, sin);
  Tensor q = qkv_parts[0], k = qkv_parts[1], v = qkv_parts[2];
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  x = x + proj->forward(attend(q, k, v, ids).permute({0, 2, 1, 3}).reshape({B, T, D}));
  const Tensor h = n2->forward(x);
  return x + w2->forward(F::silu(w1->forward(h)) * w3->forward(h));
}

LMImpl::LMImpl(const Config& c, std::int64_t vocab_, std::int64_t engram_width) : vocab(vocab_), max_positions(c.context) {
  emb = register_module("emb", torch::nn::Embedding(vocab, c.dim));
  torch::nn::init::normal_(emb->weight, 0.0, 0.02);
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const bool engram = c.engram && std::count(c.engram_layers.begin(), c.engram_layers.end(), l) > 0;
    blocks.push_back(register_module("block" + std::to_string(l), Block(c, l, engram ? engram_width : 0)));
  }
  norm = register_module("norm", RMSNorm(c.dim));
  const std::int64_t hd = c.dim / c.heads;
  inv_freq = torch::pow(10000.0, -torch::arange(0, hd / 2, torch::kFloat64) / static_cast<double>(hd / 2));
}

std::pair<Tensor, Tensor> LMImpl::rope_tables(std::int64_t begin, std::int64_t n) const {
  const Tensor angles = torch::outer(torch::arange(begin, begin + n, torch::kFloat64), inv_freq);
  return {angles.cos().to(torch::kFloat32), angles.sin().to(torch::kFloat32)};
}

KVCache LMImpl::new_cache() const {
  KVCache c;
  c.blocks.resize(blocks.size());
  return c;
}

Tensor LMImpl::forward(const Tensor& ids, const MemoryFn& memory, KVCache* cache) {
  const std::int64_t T = ids.size(1), past = cache ? cache->length : 0;
  if (past + T > max_positions) {
    throw Error("the model sees at most " + std::to_string(max_positions) + " positions, asked for " +
                std::to_string(past + T));
  }
  Tensor x = emb->forward(ids);
  const auto [cos, sin] = rope_tables(past, T);
  for (std::size_t l = 0; l < blocks.size(); ++l) {
    const Tensor e = blocks[l]->has_engram && memory ? memory(l) : Tensor();
    x = blocks[l]->forward(x, e, ids, cos, sin, cache ? &cache->blocks[l] : nullptr);
  }
  if (cache) cache->length += T;
  const Tensor h = norm->forward(x);
  // One position (decoding): a matrix-vector product. As a 1-row GEMM, OpenBLAS would repack the whole
  // [vocab, dim] embedding for every token (measured: the largest cost of decoding).
  if (h.size(0) * h.size(1) == 1) return torch::mv(emb->weight, h.reshape({-1})).reshape({1, 1, vocab});
  return torch::matmul(h, emb->weight.t());
}

bool decays(const std::string& name, const Tensor& p) {
  const bool bias = name.size() >= 2 && name.compare(name.size() - 2, 2, "_b") == 0;
  return p.dim() >= 2 && !bias && name.find("norm") == std::string::npos;
}

double train_flops_per_token(const LM& model, const Config& c) {
  double matrix_params = 0;
  for (const auto& p : model->named_parameters()) {
    if (p.value().dim() >= 2) matrix_params += static_cast<double>(p.value().numel());
  }
  // Attention scores and mixing: 2 · 2 · dim FLOPs per (query, key) pair a query sees, ×3 for forward + backward.
  // Keys per query: exact (causal) T/2 on average; LSH about 1.5 chunks per round (its own chunk, half masked,
  // and the previous one); bucket heads none (running means cost O(dim) per token, counted as 0).
  const double T = static_cast<double>(c.context);
  const double lsh_keys = std::min(T / 2, 1.5 * static_cast<double>(c.lsh_chunk)) * static_cast<double>(c.lsh_rounds);
  double keys = T / 2;
  if (c.attention == "lsh") keys = lsh_keys;
  if (c.attention == "bucket") keys = 0;
  if (c.attention == "mixed") keys = T / 2 * static_cast<double>(c.exact_head_count()) / static_cast<double>(c.heads);
  return 6.0 * matrix_params + 3.0 * 4.0 * static_cast<double>(c.layers * c.dim) * keys;
}

// ---- Engram memory ----

EngramMemory::EngramMemory(const Config& c, std::vector<std::int64_t> lookup, std::int64_t compressed_vocab,
                           std::string compression_sha256)
    : lookup_(std::move(lookup)), compression_sha256_(std::move(compression_sha256)), row_dim_(c.engram_row_dim) {
  identity_ = c.has_ablation("compression");
  engram::Config ec;
  ec.vocab_per_order.assign(static_cast<std::size_t>(c.engram_max_ngram - 1), c.engram_vocab_per_order);
  ec.max_ngram = static_cast<int>(c.engram_max_ngram);
  ec.heads = static_cast<int>(c.engram_heads);
  ec.layers = c.engram_layers;
  ec.pad_id = identity_ ? kEos : lookup_.at(static_cast<std::size_t>(kEos));
  ec.compressed_vocab = compressed_vocab;
  ec.head_dim = c.engram_row_dim;
  layout_ = engram::make_layout(ec);
  width_ = ec.columns() * c.engram_row_dim;
  counts_.resize(layout_.layers.size());
  for (std::size_t t = 0; t < layout_.layers.size(); ++t) counts_[t].assign(static_cast<std::size_t>(layout_.layers[t].rows), 0);
}

void EngramMemory::create(const std::string& path, std::uint64_t seed, float stddev) {
  store::CreateOptions co;
  co.config = layout_.config;
  co.dim = row_dim_;
  co.dtype = store::DType::f32;
  co.init = store::Init::normal;
  co.stddev = stddev;
  co.seed = seed;
  co.compression_sha256 = compression_sha256_;
  store::create_table(co, path);
}

void EngramMemory::open(const std::string& path, const store::OpenOptions& options) {
  const store::TableInfo info = store::read_info(path);
  const engram::Layout theirs = engram::make_layout(info.config);
  bool same = info.dim == row_dim_ && theirs.layers.size() == layout_.layers.size();
  for (std::size_t t = 0; same && t < theirs.layers.size(); ++t) {
    same = theirs.layers[t].layer_id == layout_.layers[t].layer_id && theirs.layers[t].offsets == layout_.layers[t].offsets &&
           theirs.layers[t].multipliers == layout_.layers[t].multipliers && theirs.layers[t].rows == layout_.layers[t].rows;
  }
  if (!same) throw Error("Engram table '" + path + "' does not match the run's config (layers, primes or row width differ)");
  table_ = store::Table::open(path, options);
}

std::vector<std::int64_t> EngramMemory::compress(const std::int64_t* ids, std::size_t n) const {
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t id = ids[i];
    if (id < 0 || (identity_ ? id >= layout_.config.compressed_vocab : id >= static_cast<std::int64_t>(lookup_.size()))) {
      throw Error("token id " + std::to_string(id) + " is outside the tokenizer's vocabulary");
    }
    out[i] = identity_ ? id : lookup_[static_cast<std::size_t>(id)];
  }
  return out;
}

std::vector<std::vector<std::int64_t>> EngramMemory::row_ids(const Tensor& ids) const {
  const std::int64_t B = ids.size(0), T = ids.size(1);
  const Tensor c = ids.contiguous();
  const std::vector<std::int64_t> compressed = compress(c.data_ptr<std::int64_t>(), static_cast<std::size_t>(B * T));
  std::vector<std::vector<std::int64_t>> rows(layout_.layers.size());
  for (std::size_t t = 0; t < rows.size(); ++t) {
    rows[t].resize(static_cast<std::size_t>(B * T * columns()));
    engram::hash_batch(layout_, t, compressed.data(), B, T, rows[t].data(), /*add_offsets=*/true);
  }
  return rows;
}

void EngramMemory::count(const std::vector<std::vector<std::int64_t>>& rows) {
  for (std::size_t t = 0; t < rows.size(); ++t) {
    auto& c = counts_[t];
    for (std::int64_t r : rows[t]) {
      std::uint32_t& n = c[static_cast<std::size_t>(r)];
      if (n != UINT32_MAX) ++n;
    }
  }
}

std::vector<store::Ticket> EngramMemory::prefetch(const std::vector<std::vector<std::int64_t>>& rows) {
  std::vector<store::Ticket> tickets;
  for (std::size_t t = 0; t < rows.size(); ++t) tickets.push_back(table_->prefetch(static_cast<int>(t), rows[t].data(), rows[t].size()));
  return tickets;
}

Tensor EngramMemory::gather(store::Ticket& ticket, std::int64_t batch, std::int64_t seq) {
  Tensor e = torch::empty({batch, seq, width_}, torch::kFloat32);
  table_->gather(ticket, e.data_ptr<float>());
  return e;
}

void EngramMemory::update(const std::vector<std::vector<std::int64_t>>& rows, const std::vector<Tensor>& gathered, float lr,
                          std::int64_t adam_step) {
  for (std::size_t t = 0; t < rows.size(); ++t) {
    if (!gathered[t].defined() || !gathered[t].grad().defined()) continue;
    const Tensor g = gathered[t].grad().contiguous();
    store::UpdateOptions u;
    u.optimizer = store::Optimizer::adam;
    u.lr = lr;
    u.step = adam_step;
    table_->apply_rows(static_cast<int>(t), rows[t].data(), rows[t].size(), g.data_ptr<float>(), u);
  }
}

void EngramMemory::write_profile(const std::string& path) const {
  std::vector<TensorView> views;
  for (std::size_t t = 0; t < counts_.size(); ++t) {
    views.push_back({"counts." + std::to_string(layout_.layers[t].layer_id), "U32",
                     {static_cast<std::int64_t>(counts_[t].size())}, counts_[t].data()});
  }
  write_safetensors(path, views, {{"format", "hashmem-row-profile"}});
}

void EngramMemory::read_profile(const std::string& path) {
  const SafetensorsFile file(path);
  for (std::size_t t = 0; t < counts_.size(); ++t) {
    const auto& e = file.get("counts." + std::to_string(layout_.layers[t].layer_id), "U32",
                             {static_cast<std::int64_t>(counts_[t].size())});
    std::memcpy(counts_[t].data(), e.data, e.bytes);
  }
}

std::vector<std::vector<std::int64_t>> EngramMemory::hot_rows(std::int64_t total) const {
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

CompressionFile read_compression(const std::string& path) {
  if (path.empty()) throw Error("Engram needs the tokenizer compression file (hashmem train writes it)");
  const MappedFile file(path);
  return parse_compression(file.view(), path);
}

std::unique_ptr<EngramMemory> make_memory(const Config& c, std::int64_t vocab, const std::string& compression_path) {
  if (!c.engram) return nullptr;
  if (c.has_ablation("compression")) return std::make_unique<EngramMemory>(c, std::vector<std::int64_t>{}, vocab, "");
  CompressionFile f = read_compression(compression_path);
  if (static_cast<std::int64_t>(f.lookup.size()) != vocab) {
    throw Error("compression file '" + compression_path + "' covers " + std::to_string(f.lookup.size()) +
                " token ids, the corpus' tokenizer has " + std::to_string(vocab));
  }
  return std::make_unique<EngramMemory>(c, std::move(f.lookup), f.compressed_vocab, f.sha256);
}

std::vector<std::int64_t> token_stream(const std::string& path, std::int64_t eos, std::int64_t* vocab) {
  const data::TokenIds t = data::read_token_ids(path);
  if (vocab) *vocab = static_cast<std::int64_t>(t.vocab_size);
  std::vector<std::int64_t> out;
  out.reserve(t.ids.size() + t.documents());
  for (std::size_t d = 0; d < t.documents(); ++d) {
    for (std::uint64_t i = t.document_starts[d]; i < t.document_starts[d + 1]; ++i) out.push_back(t.ids[i]);
    out.push_back(eos);
  }
  return out;
}

void save_weights(torch::nn::Module& module, const std::string& path) {
  std::vector<Tensor> keep;  // contiguous copies stay alive until written
  std::vector<TensorView> views;
  for (const auto& p : module.named_parameters()) {
    keep.push_back(p.value().detach().contiguous());
    views.push_back({p.key(), "F32", keep.back().sizes().vec(), keep.back().data_ptr<float>()});
  }
  write_safetensors(path, views, {{"format", "hashmem-weights"}});
}

void load_weights(torch::nn::Module& module, const std::string& path) {
  const SafetensorsFile file(path);
  torch::NoGradGuard no_grad;
  std::size_t used = 0;
  for (auto& p : module.named_parameters()) {
    const auto& e = file.get(p.key(), "F32", p.value().sizes().vec());
    std::memcpy(p.value().data_ptr<float>(), e.data, e.bytes);
    ++used;
  }
  if (used != file.tensors().size()) {
    throw Error("'" + path + "' holds " + std::to_string(file.tensors().size()) + " tensors, the model has " +
                std::to_string(used) + " (another model's weights?)");
  }
}

std::string checkpoint_dir(const std::string& run) {
  namespace fs = std::filesystem;
  if (fs::exists(run + "/checkpoint/state.json")) return run + "/checkpoint";
  if (fs::exists(run + "/checkpoint.old/state.json")) return run + "/checkpoint.old";
  throw Error("run '" + run + "' has no checkpoint (checkpoint/state.json is missing)");
}

Config read_run_config(const std::string& run) {
  const std::string path = run + "/config.json";
  if (!std::filesystem::exists(path)) throw Error("'" + run + "' is not a run directory (no config.json)");
  const MappedFile file(path);
  Config c = config_from_json(std::string(file.view()), Config{}, path);
  validate(c);
  return c;
}

}  // namespace hashmem::model
