// Building the pre-tokenizer from tokenizer.json, and the ByteLevel step (pre_tokenizer.hpp).
#include "tokenize/pre_tokenizer.hpp"

#include "hashmem/error.hpp"
#include "tokenize/js_regex.hpp"

namespace hashmem::tokenize {
namespace {

// transformers.js's ByteLevelPreTokenizer pattern (GPT-2's, in JavaScript syntax).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

bool boolean(const nlohmann::json& config, const char* key, bool otherwise, const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return otherwise;
  if (!it->is_boolean()) throw Error(where + "." + key + " is not true or false");
  return it->get<bool>();
}

std::unique_ptr<Regex> compile_js(const std::string& js, const std::string& where) {
  std::string pcre;
  try {
    pcre = js_regex_to_pcre2(js);
  } catch (const Error& e) {
    throw Error(where + ": the regex " + nlohmann::json(js).dump() + " is not supported: " + e.what());
  }
  return std::make_unique<Regex>(pcre, where);
}

PreTokenizer::Split split_step(const nlohmann::json& config, const std::string& where) {
  const auto pattern = config.find("pattern");
  if (pattern == config.end() || !pattern->is_object()) throw Error(where + ".pattern is not an object");
  PreTokenizer::Split split;
  if (const auto regex = pattern->find("Regex"); regex != pattern->end() && regex->is_string()) {
    split.regex = compile_js(transformers_js_pattern_fixes(regex->get<std::string>()), where + ".pattern.Regex");
  } else if (const auto literal = pattern->find("String"); literal != pattern->end() && literal->is_string()) {
    split.regex = std::make_unique<Regex>(pcre2_literal(literal->get<std::string>()), where + ".pattern.String");
  } else {
    throw Error(where + ".pattern has neither a string \"Regex\" nor a string \"String\"");
  }
  split.matches_only = boolean(config, "invert", false, where);
  const auto behavior = config.find("behavior");
  const std::string name = behavior != config.end() && behavior->is_string() ? behavior->get<std::string>() : "";
  const char* wanted = split.matches_only ? "Removed" : "Isolated";
  if (name != wanted) {
    throw Error(where + ": behavior " + (name.empty() ? std::string("missing") : "\"" + name + "\"") + " with invert " +
                (split.matches_only ? "true" : "false") + " is not supported (supported: \"Isolated\" with invert " +
                "false, \"Removed\" with invert true: the two transformers.js encodes as the Rust tokenizers do)");
  }
  return split;
}

void add_steps(const nlohmann::json& config, const std::string& where, PreTokenizer& out, bool& byte_level) {
  const auto type = config.is_object() ? config.find("type") : config.end();
  if (!config.is_object() || type == config.end() || !type->is_string()) {
    throw Error(where + " is not an object with a string \"type\"");
  }
  const std::string& name = type->get_ref<const std::string&>();
  if (byte_level) throw Error(where + ": a " + name + " step after ByteLevel is not supported (ByteLevel must be last)");
  if (name == "Sequence") {
    const auto steps = config.find("pretokenizers");
    if (steps == config.end() || !steps->is_array()) throw Error(where + ".pretokenizers is not a list");
    for (std::size_t k = 0; k < steps->size(); ++k) {
      add_steps((*steps)[k], where + ".pretokenizers[" + std::to_string(k) + "]", out, byte_level);
    }
  } else if (name == "Split") {
    out.splits.push_back(split_step(config, where));
  } else if (name == "ByteLevel") {
    byte_level = true;
    out.add_prefix_space = boolean(config, "add_prefix_space", false, where);
    if (boolean(config, "use_regex", true, where)) out.byte_level_regex = compile_js(kGpt2Pattern, where + " (GPT-2 pattern)");
  } else {
    throw Error(where + ".type is \"" + name + "\": not supported (supported: Sequence, Split, ByteLevel)");
  }
}

}  // namespace

PreTokenizer build_pre_tokenizer(const nlohmann::json* config, const std::string& origin) {
  const std::string where = origin + ": pre_tokenizer";
  if (!config || config->is_null()) {
    throw Error(where + " is missing: only byte-level BPE (a ByteLevel pre-tokenizer) is supported");
  }
  PreTokenizer out;
  bool byte_level = false;
  add_steps(*config, where, out, byte_level);
  if (!byte_level) throw Error(where + " has no ByteLevel step: only byte-level BPE is supported");
  return out;
}

namespace detail {

void byte_level_words(const PreTokenizer& pre, MatchScratch& scratch, std::string_view piece,
                      const std::function<void(std::string_view)>& on_word) {
  std::string prefixed;
  if (pre.add_prefix_space && (piece.empty() || piece.front() != ' ')) {
    prefixed.reserve(piece.size() + 1);
    prefixed += ' ';
    prefixed += piece;
    piece = prefixed;
  }
  if (!pre.byte_level_regex) {
    on_word(piece);
    return;
  }
  for_each_js_match(*pre.byte_level_regex, scratch, piece,
                    [&](std::size_t begin, std::size_t end) { on_word(piece.substr(begin, end - begin)); });
}

}  // namespace detail
}  // namespace hashmem::tokenize
