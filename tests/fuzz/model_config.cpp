// Fuzz target: the tiny LM's config (a run directory's config.json, `hashmem train --config`) read by
// model::config_from_json over the tiny preset, validated, written back and read again.
#include <cstdint>
#include <string>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace model = hashmem::model;
  try {
    const model::Config c =
        model::config_from_json(std::string(hashmem::fuzz::as_text(data, size)), model::preset("tiny"), "config.json");
    const std::string text = model::config_to_json(c);
    HASHMEM_FUZZ_CHECK(model::config_to_json(model::config_from_json(text, model::Config{}, "round trip")) == text);
    model::validate(c);
    // What the trainer derives from a valid config.
    HASHMEM_FUZZ_CHECK(c.steps() >= 1 && c.ffn_width() >= 1 && c.exact_head_count() >= 0);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
