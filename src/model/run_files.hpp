// Internal (src/model/): the JSON files of a run directory besides config.json (model.hpp) — the checkpoint's
// state.json (the compression file is engram::parse_compression_json) — as text in and out. No torch here: this sits in the core
// library, so the CLI, the tests and the fuzz targets read these files exactly as the model process does.
//
// Threads: reentrant. Ownership: plain values. Errors: hashmem::Error naming `path` and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hashmem::model {

// One row of metrics.csv (and of state.json's "metrics").
struct Metric {
  std::int64_t step = 0, tokens = 0;
  double train_loss = 0, val_loss = -1, lr = 0, tokens_per_s = 0, seconds = 0;
};

// What a checkpoint records besides the tensors.
struct RunState {
  std::int64_t step = 0;  // steps done
  std::vector<std::size_t> corpus_tokens;  // train and valid stream lengths the run was trained on
  double first_train_loss = 0, smooth_loss = 0, train_seconds = 0;
  std::vector<Metric> metrics;
};

// state.json: {"format": "hashmem-checkpoint", "step", "first_train_loss", "smooth_loss", "train_seconds",
// "engram", "corpus_tokens": [train, valid], "metrics": [[step, tokens, train_loss, val_loss, lr, tokens/s,
// seconds], ...]} on one line, with a final newline. `corpus_tokens` are written in place of s.corpus_tokens.
std::string run_state_json(const RunState& s, bool engram, const std::vector<std::size_t>& corpus_tokens);
// Throws Error naming `path` when `text` is not such a state.
RunState parse_run_state(std::string_view text, const std::string& path);

}  // namespace hashmem::model
