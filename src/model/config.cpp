// The tiny LM's Config: presets, JSON in and out, validation (include/hashmem/model.hpp). No torch here: the
// CLI process (which must not load libtorch next to libsentencepiece) reads and checks configs too.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "hashmem/error.hpp"
#include "hashmem/model.hpp"

namespace hashmem::model {
namespace {

const std::vector<std::string> kAblations = {"gate", "compression", "conv"};

// Every field once, for both directions: visit(name, member).
template <class C, class Visit>
void visit_fields(C& c, Visit&& v) {
  v("dim", c.dim);
  v("layers", c.layers);
  v("heads", c.heads);
  v("context", c.context);
  v("ffn", c.ffn);
  v("engram", c.engram);
  v("engram_layers", c.engram_layers);
  v("engram_row_dim", c.engram_row_dim);
  v("engram_heads", c.engram_heads);
  v("engram_max_ngram", c.engram_max_ngram);
  v("engram_vocab_per_order", c.engram_vocab_per_order);
  v("engram_kernel", c.engram_kernel);
  v("engram_init_std", c.engram_init_std);
  v("ablate", c.ablate);
  v("attention", c.attention);
  v("lsh_rounds", c.lsh_rounds);
  v("lsh_chunk", c.lsh_chunk);
  v("bucket_key", c.bucket_key);
  v("bucket_sign_bits", c.bucket_sign_bits);
  v("bucket_rounds", c.bucket_rounds);
  v("exact_heads", c.exact_heads);
  v("tokens", c.tokens);
  v("batch", c.batch);
  v("lr", c.lr);
  v("warmup_fraction", c.warmup_fraction);
  v("min_lr_fraction", c.min_lr_fraction);
  v("engram_lr_multiplier", c.engram_lr_multiplier);
  v("weight_decay", c.weight_decay);
  v("grad_clip", c.grad_clip);
  v("eval_every", c.eval_every);
  v("eval_windows", c.eval_windows);
  v("final_eval_windows", c.final_eval_windows);
  v("checkpoint_every", c.checkpoint_every);
  v("seed", c.seed);
  v("threads", c.threads);
}

template <class T>
bool json_has_type(const nlohmann::json& j) {
  if constexpr (std::is_same_v<T, bool>) {
    return j.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    return j.is_number_integer() && (std::is_signed_v<T> || j.is_number_unsigned());
  } else if constexpr (std::is_floating_point_v<T>) {
    return j.is_number();
  } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    return j.is_array() && std::all_of(j.begin(), j.end(), [](const auto& x) { return x.is_number_integer(); });
  } else if constexpr (std::is_same_v<T, std::string>) {
    return j.is_string();
  } else {
    return j.is_array() && std::all_of(j.begin(), j.end(), [](const auto& x) { return x.is_string(); });
  }
}

}  // namespace

bool Config::has_ablation(const std::string& name) const {
  return std::find(ablate.begin(), ablate.end(), name) != ablate.end();
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"tiny", "quick"};
  return names;
}

Config preset(const std::string& name) {
  Config c;  // the defaults are the tiny preset
  if (name == "tiny") return c;
  if (name == "quick") {
    c.dim = 64;
    c.layers = 2;
    c.heads = 2;
    c.context = 64;
    c.batch = 8;
    c.tokens = 8 * 64 * 60;
    c.lr = 1e-2;  // few steps: learn fast
    c.engram_layers = {1};
    c.engram_vocab_per_order = 5000;
    c.eval_every = 20;
    c.eval_windows = 16;
    c.final_eval_windows = 256;
    return c;
  }
  throw Error("unknown preset '" + name + "' (known: tiny, quick)");
}

Config config_from_json(const std::string& json_text, const Config& base, const std::string& source) {
  const auto j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded() || !j.is_object()) throw Error(source + ": not a JSON object");
  Config c = base;
  for (const auto& item : j.items()) {
    // Named copies, not a structured binding: clang before 16 cannot capture bindings in a lambda.
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    bool known = false;
    visit_fields(c, [&](const char* name, auto& member) {
      if (key != name) return;
      known = true;
      using T = std::decay_t<decltype(member)>;
      if (!json_has_type<T>(value)) {
        throw Error(source + ": \"" + key + "\" has the wrong type (" + std::string(value.type_name()) + ")");
      }
      member = value.get<T>();
    });
    if (!known) throw Error(source + ": unknown key \"" + key + "\"");
  }
  return c;
}

std::string config_to_json(const Config& config) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  visit_fields(config, [&](const char* name, const auto& member) { j[name] = member; });
  return j.dump(2);
}

void validate(const Config& c) {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("config: " + what);
  };
  need(c.dim >= 2 && c.heads >= 1 && c.layers >= 1, "dim, heads and layers must be positive");
  // Upper bounds far above any model this code trains, low enough that nothing derived from them overflows int64
  // (8·dim for the MLP, batch·context, (max_ngram − 1)·heads·row_dim, ...; fuzz_model_config found 8·dim).
  auto at_most = [&](const char* name, std::int64_t value, std::int64_t limit) {
    need(value <= limit, std::string(name) + " must be <= " + std::to_string(limit) + ", got " + std::to_string(value));
  };
  at_most("dim", c.dim, 1 << 20);
  at_most("layers", c.layers, 1 << 16);
  at_most("context", c.context, 1 << 24);
  at_most("batch", c.batch, 1 << 24);
  at_most("ffn", c.ffn, 1 << 24);
  at_most("engram_row_dim", c.engram_row_dim, 1 << 16);
  at_most("engram_heads", c.engram_heads, 4096);
  at_most("engram_max_ngram", c.engram_max_ngram, 64);
  at_most("engram_kernel", c.engram_kernel, 1 << 10);
  need(c.dim % c.heads == 0 && (c.dim / c.heads) % 2 == 0,
       "dim " + std::to_string(c.dim) + " must split into " + std::to_string(c.heads) + " heads of even size");
  need(c.context >= 2, "context must be >= 2");
  need(c.ffn >= 0, "ffn must be >= 0 (0 = automatic)");
  need(c.batch >= 1, "batch must be >= 1");
  need(c.tokens >= c.batch * c.context, "tokens (" + std::to_string(c.tokens) + ") must cover one batch of batch · context = " +
                                            std::to_string(c.batch * c.context));
  need(c.lr > 0 && c.engram_lr_multiplier > 0, "learning rates must be positive");
  need(c.warmup_fraction >= 0 && c.warmup_fraction < 1, "warmup_fraction must be in [0, 1)");
  need(c.min_lr_fraction >= 0 && c.min_lr_fraction <= 1, "min_lr_fraction must be in [0, 1]");
  need(c.weight_decay >= 0 && c.grad_clip >= 0, "weight_decay and grad_clip must be >= 0");
  need(c.eval_every >= 1 && c.eval_windows >= 1, "eval_every and eval_windows must be >= 1");
  need(c.final_eval_windows >= 0, "final_eval_windows must be >= 0 (0 = every window)");
  need(c.checkpoint_every >= 0, "checkpoint_every must be >= 0");
  need(c.threads >= 1, "threads must be >= 1");
  const std::vector<std::string> attentions = {"exact", "torch", "lsh", "bucket", "mixed"};
  need(std::find(attentions.begin(), attentions.end(), c.attention) != attentions.end(),
       "unknown attention '" + c.attention + "' (known: exact, torch, lsh, bucket, mixed)");
  need(c.lsh_rounds >= 1 && c.lsh_rounds <= 64 && c.lsh_chunk >= 1, "lsh_rounds must be in [1, 64] and lsh_chunk >= 1");
  need(c.bucket_key == "lsh" || c.bucket_key == "token", "bucket_key must be lsh or token, got '" + c.bucket_key + "'");
  need(c.bucket_sign_bits >= 1 && c.bucket_sign_bits <= 64 && c.bucket_rounds >= 1 && c.bucket_rounds <= 64,
       "bucket_sign_bits and bucket_rounds must be in [1, 64]");
  need(c.exact_heads >= 0 && c.exact_heads < c.heads, "exact_heads must be in [0, heads)");
  need(c.attention != "mixed" || c.exact_head_count() >= 1, "mixed attention needs at least one exact head (heads >= 2)");
  for (const auto& a : c.ablate) {
    need(std::find(kAblations.begin(), kAblations.end(), a) != kAblations.end(),
         "unknown ablation '" + a + "' (known: gate, compression, conv)");
  }
  if (!c.engram) {
    need(c.ablate.empty(), "ablations need Engram on");
    return;
  }
  need(!c.engram_layers.empty(), "engram_layers is empty (use engram: false for the baseline)");
  for (std::size_t i = 0; i < c.engram_layers.size(); ++i) {
    const std::int64_t l = c.engram_layers[i];
    need(l >= 0 && l < c.layers, "engram layer " + std::to_string(l) + " is not a block of the model (0.." +
                                     std::to_string(c.layers - 1) + ")");
    need(i == 0 || l > c.engram_layers[i - 1], "engram_layers must be increasing");
  }
  need(c.engram_row_dim >= 1 && c.engram_heads >= 1, "engram_row_dim and engram_heads must be >= 1");
  need(c.engram_max_ngram >= 2, "engram_max_ngram must be >= 2");
  need(c.engram_vocab_per_order >= 2, "engram_vocab_per_order must be >= 2");
  need(c.engram_kernel >= 1, "engram_kernel must be >= 1");
  need(c.engram_init_std > 0, "engram_init_std must be > 0");
}

}  // namespace hashmem::model
