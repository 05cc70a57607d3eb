// Fuzz target: HashHop predictions (JSONL of {"sample", "query", "answer"} or {"sample", "completion"}) read by
// read_predictions and scored by score_file against a fixed dataset: the two samples the seed corpus was made
// for (tests/fuzz/hashhop_predictions/README), generated in memory.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"

namespace {

namespace hashhop = hashmem::hashhop;

// hashmem hashhop generate --seed 7 --chars 400 --hops 2 --hash-length 4 --queries 3 --samples 2 [--cot]
std::vector<hashhop::DatasetSample> make_dataset() {
  std::vector<hashhop::DatasetSample> dataset;
  for (bool cot : {false, true}) {
    hashhop::Params p;
    p.seed = cot ? 8 : 7;
    p.n_chars = 400;
    p.hops = 2;
    p.hash_length = 4;
    p.num_queries = 3;
    p.cot = cot;
    const hashhop::Sample sample = hashhop::generate(p);
    hashhop::DatasetSample s;
    s.params = p;
    for (const auto& [key, value] : sample.targets) s.targets.add(key, value);
    dataset.push_back(std::move(s));
  }
  return dataset;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("predictions.jsonl");
  static const std::vector<hashhop::DatasetSample> dataset = make_dataset();
  const std::string& path = file.write(data, size);
  try {
    const std::vector<hashhop::Prediction> predictions = hashhop::read_predictions(path);
    for (bool all : {false, true}) {
      const hashhop::ScoreReport a = hashhop::score_file(dataset, path, all);
      const hashhop::ScoreReport b = hashhop::score(dataset, predictions, all);
      HASHMEM_FUZZ_CHECK(a.queries == b.queries && a.correct == b.correct && a.correct <= a.queries);
      HASHMEM_FUZZ_CHECK(a.unknown_predictions == b.unknown_predictions);
    }
  } catch (const hashmem::Error&) {
  }
  hashhop::parse_completion(0, hashmem::fuzz::as_text(data, size));
  return 0;
}
