// The tiny LM and its training loop (include/hashmem/model.hpp). The only translation unit of the model that
// includes torch headers.
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "hashmem/common.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"
#include "torch/engram_autograd.hpp"

namespace hashmem::model {
namespace {

using torch::Tensor;
namespace F = torch::nn::functional;

struct RMSNormImpl : torch::nn::Module {
  Tensor weight;
  explicit RMSNormImpl(std::int64_t dim) { weight = register_parameter("weight", torch::ones({dim})); }
  Tensor forward(const Tensor& x) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * weight; }
};
TORCH_MODULE(RMSNorm);

// Rotary position embedding on [B, heads, T, head_dim] (rotating the two halves of each head).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

struct EngramWeights {
  Tensor key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w;
};

struct BlockImpl : torch::nn::Module {
  std::int64_t heads;
  RMSNorm n1{nullptr}, n2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, w1{nullptr}, w2{nullptr}, w3{nullptr};
  bool has_engram = false;
  std::int64_t dilation = 3;
  EngramWeights eg;

  BlockImpl(std::int64_t dim, std::int64_t heads_, std::int64_t ffn, std::int64_t engram_width, std::int64_t max_ngram)
      : heads(heads_) {
    n1 = register_module("n1", RMSNorm(dim));
    n2 = register_module("n2", RMSNorm(dim));
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)));
    proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
    w1 = register_module("w1", torch::nn::Linear(torch::nn::LinearOptions(dim, ffn).bias(false)));
    w3 = register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(dim, ffn).bias(false)));
    w2 = register_module("w2", torch::nn::Linear(torch::nn::LinearOptions(ffn, dim).bias(false)));
    if (engram_width > 0) {
      has_engram = true;
      dilation = max_ngram;
      const double s = 1.0 / std::sqrt(static_cast<double>(engram_width));
      eg.key_w = register_parameter("engram_key_w", torch::randn({1, dim, engram_width}) * s);
      eg.key_b = register_parameter("engram_key_b", torch::zeros({1, dim}));
      eg.value_w = register_parameter("engram_value_w", torch::randn({dim, engram_width}) * s);
      eg.value_b = register_parameter("engram_value_b", torch::zeros({dim}));
      eg.norm1 = register_parameter("engram_norm1", torch::ones({1, dim}));
      eg.norm2 = register_parameter("engram_norm2", torch::ones({1, dim}));
      eg.conv_norm = register_parameter("engram_conv_norm", torch::ones({1, dim}));
      eg.conv_w = register_parameter("engram_conv_w", torch::zeros({dim, 4}));  // the paper: conv starts at zero
    }
  }

  Tensor forward(Tensor x, const Tensor& e, const Tensor& cos, const Tensor& sin) {
    const std::int64_t B = x.size(0), T = x.size(1), D = x.size(2), hd = D / heads;
    if (has_engram && e.defined()) {
      const Tensor out = hashmem::torch_ops::engram_layer(x.reshape({B, T, 1, D}), e, eg.key_w, eg.key_b, eg.value_w,
                                                          eg.value_b, eg.norm1, eg.norm2, eg.conv_norm, eg.conv_w, 4,
                                                          dilation);
      x = x + out.reshape({B, T, D});
    }
    const auto parts = qkv->forward(n1->forward(x)).view({B, T, 3, heads, hd}).permute({2, 0, 3, 1, 4});
    const Tensor q = rope(parts[0], cos, sin), k = rope(parts[1], cos, sin), v = parts[2];
    Tensor att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
    const Tensor mask = torch::ones({T, T}, torch::kBool).triu(1);
    att = att.masked_fill(mask, -std::numeric_limits<float>::infinity()).softmax(-1);
    x = x + proj->forward(torch::matmul(att, v).permute({0, 2, 1, 3}).reshape({B, T, D}));
    const Tensor h = n2->forward(x);
    return x + w2->forward(F::silu(w1->forward(h)) * w3->forward(h));
  }
};
TORCH_MODULE(Block);

struct LMImpl : torch::nn::Module {
  torch::nn::Embedding emb{nullptr};
  std::vector<Block> blocks;
  RMSNorm norm{nullptr};
  Tensor cos, sin;

  LMImpl(const TrainOptions& o, std::int64_t vocab, std::int64_t engram_width) {
    emb = register_module("emb", torch::nn::Embedding(vocab, o.dim));
    torch::nn::init::normal_(emb->weight, 0.0, 0.02);
    const std::int64_t ffn = (8 * o.dim / 3 + 63) / 64 * 64;
    for (std::int64_t l = 0; l < o.layers; ++l) {
      const bool engram = o.engram && std::count(o.engram_layers.begin(), o.engram_layers.end(), l) > 0;
      blocks.push_back(register_module("block" + std::to_string(l),
                                       Block(o.dim, o.heads, ffn, engram ? engram_width : 0, o.engram_max_ngram)));
    }
    norm = register_module("norm", RMSNorm(o.dim));
    const std::int64_t hd = o.dim / o.heads;
    const Tensor inv = torch::pow(10000.0, -torch::arange(0, hd / 2, torch::kFloat32) / static_cast<double>(hd / 2));
    const Tensor angles = torch::outer(torch::arange(0, o.context, torch::kFloat32), inv);
    cos = angles.cos();
    sin = angles.sin();
  }

  // memories[l]: the looked-up rows for block l (undefined for blocks without Engram, or to switch it off).
  Tensor forward(const Tensor& ids, const std::vector<Tensor>& memories) {
    const std::int64_t T = ids.size(1);
    Tensor x = emb->forward(ids);
    const Tensor c = cos.narrow(0, 0, T), s = sin.narrow(0, 0, T);
    for (std::size_t l = 0; l < blocks.size(); ++l) x = blocks[l]->forward(x, memories[l], c, s);
    return torch::matmul(norm->forward(x), emb->weight.t());
  }
};
TORCH_MODULE(LM);

// Token stream with an end-of-document id between documents.
std::vector<std::int64_t> flatten(const data::TokenIds& t, std::int64_t eos) {
  std::vector<std::int64_t> out;
  out.reserve(t.ids.size() + t.documents());
  for (std::size_t d = 0; d < t.documents(); ++d) {
    for (std::uint64_t i = t.document_starts[d]; i < t.document_starts[d + 1]; ++i) out.push_back(t.ids[i]);
    out.push_back(eos);
  }
  return out;
}

// The Engram memory: compressed ids → hashed rows → a table of the tiered store; sparse Adam on the rows.
struct Memory {
  engram::Compression compression;
  std::string compression_sha256;
  engram::Layout layout;
  std::unique_ptr<store::Table> table;
  std::int64_t width = 0;  // columns · row_dim
  std::int64_t adam_step = 0;
  struct Lookup {
    int tensor;
    std::vector<std::int64_t> rows;
    Tensor e;
  };

  std::vector<Lookup> lookup(const Tensor& ids, bool training) {
    const std::int64_t B = ids.size(0), T = ids.size(1);
    std::vector<std::int64_t> compressed(static_cast<std::size_t>(B * T));
    const Tensor c = ids.contiguous();
    const std::int64_t* raw = c.data_ptr<std::int64_t>();
    for (std::size_t i = 0; i < compressed.size(); ++i) {
      if (raw[i] < 0 || raw[i] >= static_cast<std::int64_t>(compression.lookup.size())) {
        throw Error("token id " + std::to_string(raw[i]) + " is outside the compression lookup");
      }
      compressed[i] = compression.lookup[static_cast<std::size_t>(raw[i])];
    }
    std::vector<Lookup> out;
    const int columns = layout.config.columns();
    for (std::size_t l = 0; l < layout.layers.size(); ++l) {
      Lookup lk;
      lk.tensor = static_cast<int>(l);
      lk.rows.resize(static_cast<std::size_t>(B * T * columns));
      engram::hash_batch(layout, l, compressed.data(), B, T, lk.rows.data(), /*add_offsets=*/true);
      lk.e = torch::empty({B, T, width}, torch::kFloat32);
      table->gather(lk.tensor, lk.rows.data(), lk.rows.size(), lk.e.data_ptr<float>());
      if (training) lk.e.requires_grad_(true);
      out.push_back(std::move(lk));
    }
    return out;
  }

  void update(std::vector<Lookup>& lookups, float lr) {
    ++adam_step;
    for (auto& lk : lookups) {
      if (!lk.e.grad().defined()) continue;
      const Tensor g = lk.e.grad().contiguous();
      store::UpdateOptions u;
      u.optimizer = store::Optimizer::adam;
      u.lr = lr;
      u.step = adam_step;
      table->apply_rows(lk.tensor, lk.rows.data(), lk.rows.size(), g.data_ptr<float>(), u);
    }
  }
};

// The tokenizer compression as `hashmem engram compress --out` writes it ({"lookup_sha256", "lookup", ...}).
// Read from a file because this process must not load libsentencepiece (its protobuf-lite clashes with
// libtorch's protobuf); `hashmem train` computes it and passes the file.
engram::Compression read_compression(const std::string& path) {
  if (path.empty()) throw Error("train: Engram needs the tokenizer compression file (hashmem train writes it)");
  MappedFile file(path);
  const auto j = nlohmann::json::parse(file.view(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("lookup") || !j["lookup"].is_array()) {
    throw Error("compression file '" + path + "' has no \"lookup\" list");
  }
  engram::Compression c;
  c.lookup = j["lookup"].get<std::vector<std::int64_t>>();
  c.tokenizer_entries = static_cast<std::int64_t>(c.lookup.size());
  for (std::int64_t v : c.lookup) c.compressed_vocab = std::max(c.compressed_vocab, v + 1);
  return c;
}

double evaluate(LM& model, Memory* memory, const std::vector<std::int64_t>& valid, const TrainOptions& o, bool engram_on) {
  torch::NoGradGuard no_grad;
  model->eval();
  const std::int64_t windows = o.eval_windows, T = o.context;
  const std::int64_t span = static_cast<std::int64_t>(valid.size()) - T - 1;
  if (span <= 0) throw Error("the validation split is shorter than one context window");
  double total = 0;
  const std::int64_t per_batch = 16;
  for (std::int64_t w0 = 0; w0 < windows; w0 += per_batch) {
    const std::int64_t nb = std::min(per_batch, windows - w0);
    Tensor batch = torch::empty({nb, T + 1}, torch::kInt64);
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t at = (w0 + b) * span / std::max<std::int64_t>(windows - 1, 1);
      std::copy(valid.begin() + at, valid.begin() + at + T + 1, batch[b].data_ptr<std::int64_t>());
    }
    const Tensor x = batch.narrow(1, 0, T), y = batch.narrow(1, 1, T);
    std::vector<Tensor> memories(model->blocks.size());
    if (memory && engram_on) {
      auto lookups = memory->lookup(x, false);
      for (std::size_t i = 0; i < lookups.size(); ++i) {
        memories[static_cast<std::size_t>(o.engram_layers[i])] = lookups[i].e;
      }
    }
    const Tensor logits = model->forward(x, memories);
    total += F::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.reshape({-1})).item<double>() * nb;
  }
  model->train();
  return total / static_cast<double>(windows);
}

}  // namespace

TrainResult train(const TrainOptions& o) {
  if (o.out.empty()) throw Error("train: give an output directory (--out)");
  if (o.dim % o.heads || (o.dim / o.heads) % 2) throw Error("train: dim must split into heads of even size");
  if (o.batch < 1 || o.context < 2 || o.tokens < o.batch * o.context) throw Error("train: tokens must cover one batch");
  for (std::int64_t l : o.engram_layers) {
    if (l < 0 || l >= o.layers) throw Error("train: engram layer " + std::to_string(l) + " is not a block of the model");
  }
  std::filesystem::create_directories(o.out);
  torch::manual_seed(o.seed);
  torch::set_num_threads(o.threads);
  const data::TokenIds train_ids = data::read_token_ids(o.corpus + "/train.ids");
  const data::TokenIds valid_ids = data::read_token_ids(o.corpus + "/valid.ids");
  const std::int64_t vocab = static_cast<std::int64_t>(train_ids.vocab_size);
  const std::int64_t eos = 2;
  const std::vector<std::int64_t> train_stream = flatten(train_ids, eos), valid_stream = flatten(valid_ids, eos);

  std::unique_ptr<Memory> memory;
  std::int64_t engram_width = 0;
  if (o.engram) {
    memory = std::make_unique<Memory>();
    memory->compression = read_compression(o.compression);
    {
      MappedFile file(o.compression);
      const auto j = nlohmann::json::parse(file.view(), nullptr, false);
      if (j.contains("lookup_sha256") && j["lookup_sha256"].is_string()) memory->compression_sha256 = j["lookup_sha256"];
    }
    engram::Config c;
    c.vocab_per_order.assign(static_cast<std::size_t>(o.engram_max_ngram - 1), o.engram_vocab_per_order);
    c.max_ngram = static_cast<int>(o.engram_max_ngram);
    c.heads = static_cast<int>(o.engram_heads);
    c.layers = o.engram_layers;
    c.pad_id = memory->compression.lookup[static_cast<std::size_t>(eos)];
    c.compressed_vocab = memory->compression.compressed_vocab;
    c.head_dim = o.engram_row_dim;
    memory->layout = engram::make_layout(c);
    store::CreateOptions co;
    co.config = c;
    co.dim = o.engram_row_dim;
    co.dtype = store::DType::f32;
    co.stddev = 0.5f;
    co.seed = o.seed;
    co.compression_sha256 = memory->compression_sha256;
    const std::string table_path = o.out + "/engram.safetensors";
    store::create_table(co, table_path);
    store::OpenOptions oo;
    oo.writable = true;
    memory->table = store::Table::open(table_path, oo);
    memory->width = c.columns() * o.engram_row_dim;
    engram_width = memory->width;
  }
  LM model(o, vocab, engram_width);
  std::int64_t dense = 0;
  for (const auto& p : model->parameters()) dense += p.numel();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay));

  const std::int64_t steps = o.tokens / (o.batch * o.context);
  const std::int64_t warmup = std::max<std::int64_t>(1, steps / 20);
  std::mt19937_64 rng(o.seed);
  const std::uint64_t span = train_stream.size() - static_cast<std::size_t>(o.context) - 1;
  std::ostringstream csv;
  csv << "step,tokens,train_loss,val_loss,tokens_per_s\n";
  TrainResult r;
  r.dense_parameters = dense;
  r.table_parameters = memory ? memory->table->info().total_rows() * o.engram_row_dim : 0;
  // 6 FLOPs per parameter and token (forward + backward), plus attention scores and mixing.
  r.train_flops_per_token = 6.0 * static_cast<double>(dense) + 12.0 * o.layers * o.context * o.dim / 2.0;
  Progress progress(o.engram ? "train (engram)" : "train (baseline)", static_cast<std::uint64_t>(steps));
  const double t0 = now_seconds();
  double smooth = 0;
  for (std::int64_t step = 0; step < steps; ++step) {
    const double lr_scale = step < warmup ? static_cast<double>(step + 1) / warmup
                                          : 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * (step - warmup) / std::max<std::int64_t>(1, steps - warmup)));
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(o.lr * lr_scale);
    Tensor batch = torch::empty({o.batch, o.context + 1}, torch::kInt64);
    for (std::int64_t b = 0; b < o.batch; ++b) {
      const std::uint64_t at = rng() % span;
      std::copy(train_stream.begin() + static_cast<std::ptrdiff_t>(at),
                train_stream.begin() + static_cast<std::ptrdiff_t>(at) + o.context + 1, batch[b].data_ptr<std::int64_t>());
    }
    const Tensor x = batch.narrow(1, 0, o.context), y = batch.narrow(1, 1, o.context);
    std::vector<Tensor> memories(static_cast<std::size_t>(o.layers));
    std::vector<Memory::Lookup> lookups;
    if (memory) {
      lookups = memory->lookup(x, true);
      for (std::size_t i = 0; i < lookups.size(); ++i) memories[static_cast<std::size_t>(o.engram_layers[i])] = lookups[i].e;
    }
    const Tensor logits = model->forward(x, memories);
    const Tensor loss = F::cross_entropy(logits.reshape({-1, vocab}), y.reshape({-1}));
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    if (memory) memory->update(lookups, static_cast<float>(o.lr * lr_scale * o.engram_lr_multiplier));
    const double l = loss.item<double>();
    if (step == 0) r.first_train_loss = l;
    smooth = step == 0 ? l : 0.95 * smooth + 0.05 * l;
    r.last_train_loss = smooth;
    const bool eval = (step + 1) % o.eval_every == 0 || step + 1 == steps;
    double val = -1;
    if (eval) val = evaluate(model, memory.get(), valid_stream, o, true);
    const double elapsed = now_seconds() - t0;
    const double tps = static_cast<double>((step + 1) * o.batch * o.context) / elapsed;
    csv << step + 1 << ',' << (step + 1) * o.batch * o.context << ',' << l << ',';
    if (eval) csv << val;
    csv << ',' << tps << '\n';
    if (eval) r.val_loss = val;
    if (o.progress) {
      std::ostringstream label;
      label.precision(4);
      label << (o.engram ? "train (engram) loss " : "train (baseline) loss ") << smooth << ", " << static_cast<std::int64_t>(tps)
            << " tokens/s" << (r.val_loss > 0 ? ", val " + std::to_string(r.val_loss).substr(0, 6) : "");
      progress.set_label(label.str());
      progress.update(static_cast<std::uint64_t>(step + 1));
    }
  }
  progress.finish();
  r.steps = steps;
  r.tokens = steps * o.batch * o.context;
  r.seconds = now_seconds() - t0;
  r.tokens_per_s = static_cast<double>(r.tokens) / r.seconds;
  if (memory) r.val_loss_engram_off = evaluate(model, memory.get(), valid_stream, o, false);
  write_file_atomically(o.out + "/metrics.csv", csv.str());
  const nlohmann::ordered_json summary = {
      {"engram", o.engram}, {"seed", o.seed}, {"steps", r.steps}, {"tokens", r.tokens}, {"val_loss", r.val_loss},
      {"val_loss_engram_off", r.val_loss_engram_off}, {"first_train_loss", r.first_train_loss},
      {"last_train_loss", r.last_train_loss}, {"dense_parameters", r.dense_parameters},
      {"table_parameters", r.table_parameters}, {"train_flops_per_token", r.train_flops_per_token},
      {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds}};
  write_file_atomically(o.out + "/summary.json", summary.dump(2) + "\n");
  if (memory) memory->table->checkpoint();
  return r;
}

}  // namespace hashmem::model
