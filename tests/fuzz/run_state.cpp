// Fuzz target: a training checkpoint's state.json (model::parse_run_state, what `hashmem train --resume` reads),
// written back and read again.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "model/run_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace model = hashmem::model;
  try {
    const model::RunState s = model::parse_run_state(hashmem::fuzz::as_text(data, size), "state.json");
    const std::string text = model::run_state_json(s, true, s.corpus_tokens);
    const model::RunState again = model::parse_run_state(text, "round trip");
    HASHMEM_FUZZ_CHECK(model::run_state_json(again, true, again.corpus_tokens) == text);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
