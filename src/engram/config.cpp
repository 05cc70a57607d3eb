// Engram configs: presets and the JSON config file.
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"

namespace hashmem::engram {
namespace {

Config make(std::vector<std::int64_t> vocab, int max_ngram, int heads, std::vector<std::int64_t> layers,
            std::int64_t head_dim) {
  Config c;
  c.vocab_per_order = std::move(vocab);
  c.max_ngram = max_ngram;
  c.heads = heads;
  c.layers = std::move(layers);
  c.pad_id = 2;
  c.seed = 0;
  c.compressed_vocab = 99092;  // DeepSeek-V3/V4.1 tokenizer (129,280 entries) after compression, SPEC §2
  c.head_dim = head_dim;
  return c;
}

}  // namespace

std::vector<std::string> preset_names() { return {"deepseek-demo", "deepseek-v4.1", "paper-27b", "paper-40b"}; }

Config preset(const std::string& name) {
  // The demo: engram_vocab_size [129280·5]·2, n-grams 2–3, 8 heads per order, 512 per n-gram → 64 per head.
  if (name == "deepseek-demo") return make({129280 * 5, 129280 * 5}, 3, 8, {1, 15}, 64);
  if (name == "deepseek-v4.1") return make({16000000, 16000000, 16000000}, 4, 8, {1, 14}, 256);
  // Paper: d_mem 1280 over 2 orders × 8 heads → 80 per head.
  if (name == "paper-27b") return make({2262400, 2262400}, 3, 8, {2, 15}, 80);
  if (name == "paper-40b") return make({7239680, 7239680}, 3, 8, {2, 15}, 80);
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown preset '" + name + "' (known: " + known + ")");
}

Config scaled(const Config& config, double factor) {
  if (!(factor >= 1) || !std::isfinite(factor)) {
    throw Error("scale factor must be a finite number >= 1, got " + std::to_string(factor));
  }
  if (!config.primes.empty()) throw Error("cannot scale a config with explicit primes (give vocab_per_order instead)");
  Config c = config;
  for (std::int64_t& v : c.vocab_per_order) {
    v = std::llround(static_cast<double>(v) / factor);
    if (v < 2) throw Error("scale factor " + std::to_string(factor) + " leaves a vocab_per_order entry below 2");
  }
  validate(c);
  return c;
}

Config config_from_json_text(const std::string& text, const std::string& origin) {
  using json = nlohmann::json;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error("config '" + origin + "' is not valid JSON");
  if (!j.is_object()) throw Error("config '" + origin + "' must be a JSON object");
  Config c;
  if (j.contains("preset")) {
    if (!j["preset"].is_string()) throw Error("config '" + origin + "': \"preset\" must be a string");
    c = preset(j["preset"].get<std::string>());
  }
  static const char* kKnown[] = {"preset", "vocab_per_order", "max_ngram", "heads", "layers", "pad_id", "seed",
                                 "compressed_vocab", "head_dim", "multipliers", "primes"};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* k : kKnown) known |= key == k;
    if (!known) throw Error("config '" + origin + "': unknown key \"" + key + "\"");
  }
  // Every value is an integer or a (nested) list of integers; JSON floats and strings are refused rather than
  // truncated.
  std::function<bool(const json&)> all_integers = [&](const json& v) {
    if (v.is_array()) {
      for (const auto& x : v) {
        if (!all_integers(x)) return false;
      }
      return true;
    }
    return v.is_number_integer();
  };
  auto get = [&](const char* key, auto& out) {
    if (!j.contains(key)) return false;
    if (!all_integers(j.at(key))) throw Error("config '" + origin + "': \"" + key + "\" must hold integers");
    if (std::string(key) == "seed" && !j.at(key).is_number_unsigned()) {
      throw Error("config '" + origin + "': \"seed\" must be a non-negative integer");
    }
    try {
      j.at(key).get_to(out);
    } catch (const json::exception&) {
      throw Error("config '" + origin + "': \"" + key + "\" has the wrong type");
    }
    return true;
  };
  auto require = [&](const char* key, auto& out) {
    if (!get(key, out) && !j.contains("preset")) throw Error("config '" + origin + "' lacks \"" + key + "\"");
  };
  require("vocab_per_order", c.vocab_per_order);
  require("max_ngram", c.max_ngram);
  require("heads", c.heads);
  require("layers", c.layers);
  require("compressed_vocab", c.compressed_vocab);
  get("pad_id", c.pad_id);
  get("seed", c.seed);
  get("head_dim", c.head_dim);
  get("multipliers", c.multipliers);
  get("primes", c.primes);
  try {
    validate(c);
  } catch (const Error& e) {
    throw Error("config '" + origin + "': " + e.what());
  }
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read config '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return config_from_json_text(ss.str(), path);
}


std::string config_to_json_text(const Layout& layout) {
  const Config& c = layout.config;
  nlohmann::ordered_json j;
  j["vocab_per_order"] = c.vocab_per_order;
  j["max_ngram"] = c.max_ngram;
  j["heads"] = c.heads;
  j["layers"] = c.layers;
  j["pad_id"] = c.pad_id;
  j["seed"] = c.seed;
  j["compressed_vocab"] = c.compressed_vocab;
  j["head_dim"] = c.head_dim;
  auto& multipliers = j["multipliers"] = nlohmann::ordered_json::array();
  auto& primes = j["primes"] = nlohmann::ordered_json::array();
  for (const LayerLayout& l : layout.layers) {
    multipliers.push_back(l.multipliers);
    primes.push_back(l.primes);
  }
  return j.dump();
}

}  // namespace hashmem::engram
