// `hashmem bench offload --quick`: correctness only (no timing assertions). On a ~50 MB table of DeepSeek-V4.1's
// row format it runs prefill and decode on the SSD tier at two DRAM budgets and the DRAM anchor, checks every row
// the SSD tier gathered against the same table opened in DRAM (the command exits non-zero on a difference),
// prints JSON that parses, and deletes its table. Bad options are refused by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace hashmem::testing {
namespace {

const std::string kCorpus = HASHMEM_DATA_DIR "/corpus";

bool have_data() {
  return std::filesystem::exists(HASHMEM_DEEPSEEK_TOKENIZER) && std::filesystem::exists(kCorpus + "/train.txt") &&
         std::filesystem::exists(kCorpus + "/valid.txt");
}

class OffloadBench : public CliTest {
 protected:
  std::string data_args() const {
    return std::string(" --tokenizer ") + HASHMEM_DEEPSEEK_TOKENIZER + " --train " + kCorpus + "/train.txt --valid " +
           kCorpus + "/valid.txt --workdir " + dir_.file("offload");
  }
};

TEST_F(OffloadBench, QuickRunGathersTheDramRowsFromSsdAndDeletesItsTable) {
  if (!have_data()) GTEST_SKIP() << "skipped: the corpus or DeepSeek-V3's tokenizer is missing (./run build fetches them)";
  const CommandResult r = run("bench offload --quick --json" + data_args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["verify"]["rows"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["verify"]["mismatched"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["table"]["row_bytes"].get<std::uint64_t>(), 264u);  // 256 fp8 values + 8 scales
  EXPECT_EQ(j["decode"].size(), 2u * 2u * 2u);                     // budgets × schedules × batches
  EXPECT_EQ(j["prefill"].size(), 2u);
  for (const auto& row : j["decode"]) {
    EXPECT_GT(row["tokens_per_s"].get<double>(), 0);
    EXPECT_GE(row["hit_ratio"].get<double>(), 0);
    EXPECT_LE(row["hit_ratio"].get<double>(), 1);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.file("offload") + "/table.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir_.file("offload") + "/offload-decode.csv"));
}

// The lead-first hot set (layer 1's rows before layer 14's) serves the same rows.
TEST_F(OffloadBench, TheLeadFirstHotSetGathersTheDramRows) {
  if (!have_data()) GTEST_SKIP() << "skipped: the corpus or DeepSeek-V3's tokenizer is missing (./run build fetches them)";
  const CommandResult r = run("bench offload --quick --json --hot-set lead" + data_args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["verify"]["rows"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["verify"]["mismatched"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["store"]["hot_set"].get<std::string>(), "lead");
}

TEST_F(OffloadBench, BadOptionsAreRefusedByName) {
  if (!have_data()) GTEST_SKIP() << "skipped: the corpus or DeepSeek-V3's tokenizer is missing (./run build fetches them)";
  const CommandResult budget = run("bench offload --budgets 0" + data_args());
  EXPECT_NE(budget.exit_code, 0);
  EXPECT_NE(budget.err.find("--budgets"), std::string::npos) << budget.err;
  const CommandResult scale = run("bench offload --scale 0.5 --steps 1" + data_args());
  EXPECT_NE(scale.exit_code, 0);
  EXPECT_NE(scale.err.find("scale"), std::string::npos) << scale.err;
  const CommandResult policy = run("bench offload --policy nope" + data_args());
  EXPECT_NE(policy.exit_code, 0);
  EXPECT_NE(policy.err.find("'nope'"), std::string::npos) << policy.err;
  const CommandResult missing = run(std::string("bench offload --tokenizer ") + HASHMEM_DEEPSEEK_TOKENIZER +
                                    " --train " + kCorpus + "/train.txt --valid /nonexistent/valid.txt");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/nonexistent/valid.txt"), std::string::npos) << missing.err;
  const CommandResult hot_set = run("bench offload --hot-set nope" + data_args());
  EXPECT_NE(hot_set.exit_code, 0);
  EXPECT_NE(hot_set.err.find("--hot-set"), std::string::npos) << hot_set.err;
  const CommandResult help = run("bench offload --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--quick"), std::string::npos);
}

}  // namespace
}  // namespace hashmem::testing
