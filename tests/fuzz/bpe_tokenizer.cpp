// Fuzz target: the byte-level BPE encoder (hashmem/bpe.hpp) — a tokenizer.json loaded with
// bpe::Tokenizer::from_json_text (JSON, merges, the Split regexes through the JavaScript → PCRE2 rewrite and
// PCRE2, added tokens, normalizers) and arbitrary bytes encoded with it. The input is the tokenizer.json, a NUL
// byte, then the text (JSON text cannot hold a raw NUL; without one the text is empty).
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_input.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = hashmem::fuzz::as_text(data, size);
  const std::size_t cut = input.find('\0');
  const std::string_view json = input.substr(0, cut);
  const std::string_view text = cut == std::string_view::npos ? std::string_view() : input.substr(cut + 1);
  try {
    const hashmem::bpe::Tokenizer tokenizer = hashmem::bpe::Tokenizer::from_json_text(json, "fuzz.json");
    HASHMEM_FUZZ_CHECK(tokenizer.id_count() > 0);
    hashmem::bpe::Encoder encoder(tokenizer);
    std::vector<std::int32_t> ids;
    try {
      ids = encoder.encode(text);
    } catch (const hashmem::Error&) {
      return 0;  // ill-formed UTF-8, a byte without a token, a regex over its match limit: named errors
    }
    for (std::int32_t id : ids) HASHMEM_FUZZ_CHECK(id >= 0 && id < tokenizer.id_count());
    // The word cache changes nothing: again from the cache, and from a fresh encoder.
    HASHMEM_FUZZ_CHECK(encoder.encode(text) == ids);
    HASHMEM_FUZZ_CHECK(hashmem::bpe::encode(tokenizer, text) == ids);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
