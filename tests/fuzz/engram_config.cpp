// Fuzz target: an Engram config (JSON; `--config` files, a table's "engram_config" metadata, the PyTorch op's
// config string) read by engram::config_from_json_text, laid out, written back and read again, and a few ids
// hashed by the fast kernel and by the reference, which must agree.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/engram.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace engram = hashmem::engram;
  try {
    const engram::Config config = engram::config_from_json_text(std::string(hashmem::fuzz::as_text(data, size)), "fuzz");
    const engram::Layout layout = engram::make_layout(config);
    HASHMEM_FUZZ_CHECK(layout.layers.size() == config.layers.size());
    const std::string text = engram::config_to_json_text(layout);
    const engram::Layout again = engram::make_layout(engram::config_from_json_text(text, "round trip"));
    HASHMEM_FUZZ_CHECK(engram::config_to_json_text(again) == text);

    // Two rows of ids: the pad, 0, the largest id, and some in between.
    const std::int64_t v = config.compressed_vocab;
    const std::vector<std::int64_t> ids = {0, v - 1, config.pad_id, v / 2, 1 % v, v - 1, v / 3, 0};
    const std::int64_t batch = 2, tokens = 4, columns = config.columns();
    std::vector<std::int64_t> fast(static_cast<std::size_t>(batch * tokens * columns));
    std::vector<std::int64_t> reference(fast.size());
    for (std::size_t l = 0; l < layout.layers.size(); ++l) {
      engram::hash_batch(layout, l, ids.data(), batch, tokens, fast.data(), true);
      engram::hash_batch_reference(layout, l, ids.data(), batch, tokens, reference.data(), true);
      HASHMEM_FUZZ_CHECK(fast == reference);
      for (std::int64_t row : fast) HASHMEM_FUZZ_CHECK(row >= 0 && row < layout.layers[l].rows);
    }
  } catch (const hashmem::Error&) {
  }
  return 0;
}
