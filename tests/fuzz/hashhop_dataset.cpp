// Fuzz target: a HashHop dataset (JSONL) read with prompts (for_each_sample) and without (read_dataset), scored
// with every target as its own prediction (which must all be right), and solved by the oracle, which parses the
// prompts (solve; its predictions go to a temporary that is never committed).
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/output_file.hpp"
#include "scratch_dir.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace hashhop = hashmem::hashhop;
  static hashmem::fuzz::InputFile file("dataset.jsonl");
  const std::string& path = file.write(data, size);
  try {
    hashhop::for_each_sample(path, true, [](std::int64_t, hashhop::DatasetSample& s) {
      HASHMEM_FUZZ_CHECK(s.params.n_chars > 0 && s.params.hops >= 1 && s.params.hash_length >= 1);
    });
    const std::vector<hashhop::DatasetSample> dataset = hashhop::read_dataset(path);
    for (bool all : {false, true}) {
      hashhop::Scorer scorer(dataset, all);
      for (std::size_t s = 0; s < dataset.size(); ++s) {
        const hashhop::TargetList& t = dataset[s].targets;
        for (std::size_t i = 0; i < t.size(); ++i) scorer.add(static_cast<std::int64_t>(s), t.key(i), t.value(i));
      }
      const hashhop::ScoreReport report = scorer.report();
      HASHMEM_FUZZ_CHECK(report.correct == report.queries);
    }
    hashmem::OutputFile out(hashmem::fuzz::scratch_dir() + "/predictions.jsonl");
    hashhop::solve(path, out, false);
    hashhop::solve(path, out, true);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
