// Generation from a trained run (include/hashmem/model.hpp): prefill, then one token at a time with a KV cache.
// The Engram rows of each new token are known as soon as it is sampled: their reads start before block 0 runs
// and are gathered by the first Engram block, so on the SSD tier the I/O overlaps the blocks before it. The
// tier changes where the bytes come from, never the bytes: offloaded and in-DRAM generation give the same tokens.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <random>

#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/safetensors.hpp"
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"
#include "model/lm.hpp"

namespace hashmem::model {
namespace {

using torch::Tensor;

// Greedy: the first largest logit. Top-k: the k largest (ties by lower id), softmax at `temperature` in double,
// one uniform draw from the 53 high bits of mt19937_64 — the same tokens on every machine with the same logits.
std::int64_t sample(const Tensor& logits, const GenerateOptions& o, std::mt19937_64& rng) {
  const Tensor l = logits.contiguous();
  const float* p = l.data_ptr<float>();
  const std::int64_t n = l.numel();
  if (o.top_k <= 0) return static_cast<std::int64_t>(std::max_element(p, p + n) - p);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = i;
  const std::int64_t k = std::min(o.top_k, n);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](std::int64_t a, std::int64_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
  std::vector<double> w(static_cast<std::size_t>(k));
  double total = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    total += w[static_cast<std::size_t>(i)] = std::exp((static_cast<double>(p[ids[static_cast<std::size_t>(i)]]) -
                                                        static_cast<double>(p[ids[0]])) / o.temperature);
  }
  double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  for (std::int64_t i = 0; i < k; ++i) {
    u -= w[static_cast<std::size_t>(i)];
    if (u < 0) return ids[static_cast<std::size_t>(i)];
  }
  return ids[static_cast<std::size_t>(k - 1)];
}

}  // namespace

GenerateResult generate(const GenerateOptions& o) {
  const Config c = read_run_config(o.run);
  const std::string dir = checkpoint_dir(o.run);
  if (o.prompt.empty()) throw Error("generate: the prompt is empty");
  if (o.max_new_tokens < 0) throw Error("generate: max_new_tokens must be >= 0");
  if (o.top_k > 0 && !(o.temperature > 0)) throw Error("generate: temperature must be > 0");
  torch::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;

  std::int64_t vocab = 0;
  {
    const SafetensorsFile weights(dir + "/model.safetensors");
    const auto& emb = weights.get("emb.weight", "F32");
    if (emb.shape.size() != 2) throw Error("'" + dir + "/model.safetensors': emb.weight is not a matrix");
    vocab = emb.shape[0];
  }
  for (std::int64_t id : o.prompt) {
    if (id < 0 || id >= vocab) throw Error("generate: prompt id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
  }
  std::unique_ptr<engram::Memory> memory;
  if (c.engram && !o.engram_off) memory = make_memory(c, vocab, o.run + "/compression.json");
  LM model(c, vocab, engram_width(c));
  load_weights(*model, dir + "/model.safetensors");
  model->eval();

  GenerateResult r;
  if (memory) {
    const std::string table = dir + "/engram.safetensors";
    const store::TableInfo info = store::read_info(table);
    r.table_bytes = info.data_bytes();
    store::OpenOptions oo;
    if (o.dram_budget == 0 || o.dram_budget >= r.table_bytes) {
      oo.tier = store::Tier::dram;
      r.tier = "dram";
      r.dram_budget = r.table_bytes;
    } else {
      memory->read_profile(dir + "/row-profile.safetensors");
      oo.tier = store::Tier::ssd;
      oo.dram_budget = o.dram_budget;
      oo.policy = store::Policy::s3fifo;
      oo.static_fraction = 0.9;  // the training profile predicts text well (docs/store.md: hit ratios)
      oo.hot_rows = memory->hot_rows(static_cast<std::int64_t>(o.dram_budget / info.row_bytes));
      r.tier = "ssd";
      r.dram_budget = o.dram_budget;
    }
    memory->open(table, oo);
    memory->table().reset_stats();
  }

  // One sequence whose n-gram history runs on from call to call; a fresh window resets it.
  std::optional<engram::Stream> stream;
  if (memory) stream = memory->stream(1);
  KVCache cache;
  auto run = [&](const std::int64_t* ids, std::int64_t n) {
    // The rows of these tokens: their reads start now and overlap the blocks before the first Engram block.
    engram::Lookup lookup = memory ? memory->lookup(ids, 1, n, &*stream) : engram::Lookup{};
    std::size_t next = 0;
    MemoryFn mem = [&](std::size_t) { return gather_tensor(*memory, lookup, next++); };
    const Tensor input = torch::from_blob(const_cast<std::int64_t*>(ids), {1, n}, torch::kInt64);
    return model->forward(input, memory ? mem : MemoryFn(), &cache).select(1, n - 1).squeeze(0);
  };
  // A fresh window: the cache and the n-gram histories restart (as every training window started from pad).
  std::vector<std::int64_t> sequence = o.prompt;
  auto prefill = [&](std::int64_t keep) {
    cache = model->new_cache();
    if (stream) stream->reset();
    keep = std::min<std::int64_t>(keep, static_cast<std::int64_t>(sequence.size()));
    return run(sequence.data() + sequence.size() - keep, keep);
  };

  std::mt19937_64 rng(o.seed);
  const double t0 = now_seconds();
  Tensor logits = prefill(c.context);
  const double t1 = now_seconds();
  r.prefill_seconds = t1 - t0;
  for (std::int64_t i = 0; i < o.max_new_tokens; ++i) {
    const std::int64_t token = sample(logits, o, rng);
    sequence.push_back(token);
    r.tokens.push_back(token);
    if (token == o.stop_token || i + 1 == o.max_new_tokens) break;
    // The window is full: slide it by half (a fresh prefill of the last context/2 tokens).
    if (o.no_cache || !decodes_with_cache(c)) {
      logits = prefill(c.context);
    } else {
      logits = cache.length == c.context ? prefill(c.context / 2) : run(&sequence.back(), 1);
    }
  }
  r.decode_seconds = now_seconds() - t1;
  r.tokens_per_s = r.decode_seconds > 0 ? static_cast<double>(r.tokens.size()) / r.decode_seconds : 0;
  if (memory) {
    const store::Stats s = memory->table().stats();
    r.hit_ratio = s.hit_ratio();
    r.lookups = s.lookups;
    r.reads = s.reads;
    r.late_rows = s.late_rows;
  }
  return r;
}

}  // namespace hashmem::model
