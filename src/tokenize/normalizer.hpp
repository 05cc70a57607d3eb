// The normalizer of a tokenizer.json, for the forms transformers.js implements with String.prototype.normalize:
// null, "NFC", "NFD", "NFKC", "NFKD" and Sequences of them (DeepSeek-V3's is an empty Sequence). ICU does the
// normalisation (Debian's libicu; node bundles its own ICU, so tables may differ by Unicode version).
//
// Threads: a Normalizer is immutable once built and may be used from any thread. Errors: hashmem::Error naming the
// origin, the key and the unsupported type.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace hashmem::tokenize {

class Normalizer {
 public:
  // From tokenizer.json's "normalizer" value (null or missing: none).
  Normalizer(const nlohmann::json* config, const std::string& origin);

  bool empty() const { return steps_.empty(); }
  // The text after every step in order. REQUIRES: well-formed UTF-8.
  std::string apply(std::string_view text) const;

 private:
  void add(const nlohmann::json& config, const std::string& where);
  std::vector<const void*> steps_;  // const icu::Normalizer2* (owned by ICU; void here to keep ICU out of the header)
};

}  // namespace hashmem::tokenize
