// The byte-level BPE encoder (hashmem/bpe.hpp) on hand-made tokenizer.json files whose ids can be worked out by
// hand, its errors, and its parts: the JavaScript → PCRE2 regex rewrite, the two merge strategies, the cache.
// tests/test_bpe_conformance.cpp compares it with transformers.js.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "hashmem/bpe.hpp"
#include "hashmem/error.hpp"
#include "bpe_test_tokenizers.hpp"
#include "test_util.hpp"
#include "tokenize/bpe_model.hpp"
#include "tokenize/js_regex.hpp"
#include "tokenize/regex.hpp"

namespace hashmem::bpe {
namespace {

using nlohmann::json;
using testing::small_tokenizer;
using Ids = std::vector<std::int32_t>;

using testing::error_of;

Tokenizer load(const json& j) { return Tokenizer::from_json_text(j.dump(), "test.json"); }

TEST(Bpe, HandMadeTokenizerMergesByRankThenLeftmost) {
  // No added token "ab" here, to see the plain merges.
  json j = small_tokenizer();
  j["added_tokens"].erase(2);
  const Tokenizer t = load(j);
  Encoder e(t);
  EXPECT_EQ(t.id_count(), 22);
  EXPECT_EQ(e.encode("abc"), (Ids{6}));     // a b → ab (rank 0), then ab c → abc (rank 2)
  EXPECT_EQ(e.encode("bca"), (Ids{5, 0}));  // b c → bc; "bc a" is no merge
  EXPECT_EQ(e.encode("aab"), (Ids{0, 4}));  // a b (rank 0) before a a (rank 4): a + ab
  EXPECT_EQ(e.encode("aaa"), (Ids{8, 0}));  // a a at 0 and at 1 tie: the leftmost merges
  // " ab": Ġ a b → a b first (rank 0), then Ġ ab (rank 3).
  EXPECT_EQ(e.encode(" ab"), (Ids{7}));
  // Words: "ab", " abc", "  " (a whitespace run), "x"? no: "x" is a letter run → x. Digits are split one by one
  // before the merges would see them, so "12" never merges.
  EXPECT_EQ(e.encode("ab abc  x12"), (Ids{4, 3, 6, 3, 3, 10, 11, 12}));
  EXPECT_EQ(e.encode("ab\n"), (Ids{4, 9}));
  EXPECT_EQ(e.encode(""), Ids{});
  EXPECT_EQ(t.token_id("\xC4\xA0" "ab"), 7);  // "Ġab"
  EXPECT_EQ(t.token_id("<s>"), 20);
  EXPECT_EQ(t.token_id("zz"), -1);
}

TEST(Bpe, AddedTokensMatchFirstAndStripTheirNeighbours) {
  const Tokenizer t = load(small_tokenizer());
  Encoder e(t);
  // "ab" is an added token (id 22): found in the raw text before pre-tokenization, wherever it is.
  EXPECT_EQ(e.encode("abc"), (Ids{22, 2}));
  EXPECT_EQ(e.encode("<s>abc<s>"), (Ids{20, 22, 2, 20}));
  // <x> has lstrip and rstrip: the spaces around it go; <s> keeps them.
  EXPECT_EQ(e.encode("c  <x>  c"), (Ids{2, 21, 2}));
  EXPECT_EQ(e.encode("c <s> c"), (Ids{2, 3, 20, 3, 2}));
  EXPECT_EQ(e.encode("aab"), (Ids{0, 22}));
  // A byte whose character is not in the vocabulary, with neither byte fallback nor unk_token: named.
  EXPECT_NE(error_of([&] { e.encode("c<"); }).find("byte 0x3C has no token"), std::string::npos);
}

TEST(Bpe, UnknownBytesUseByteFallbackThenUnk) {
  json j = small_tokenizer();
  j["model"]["vocab"]["<0x3C>"] = 30;  // '<' as a byte token
  j["model"]["vocab"]["<unk>"] = 31;
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  Encoder e(load(j));
  EXPECT_EQ(e.encode("c<"), (Ids{2, 30}));
  EXPECT_EQ(e.encode("c>"), (Ids{2, 31}));  // no <0x3E>: the unk token
  j["model"]["byte_fallback"] = false;
  EXPECT_EQ(Encoder(load(j)).encode("c<"), (Ids{2, 31}));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json j = small_tokenizer();
  j["added_tokens"].erase(2);
  j["model"]["vocab"]["ac"] = 40;  // no merge makes "ac"
  EXPECT_EQ(Encoder(load(j)).encode("ac"), (Ids{0, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(Encoder(load(j)).encode("ac"), (Ids{40}));
  EXPECT_EQ(Encoder(load(j)).encode("abc"), (Ids{6}));
}

TEST(Bpe, NormalizerAndByteLevelOptions) {
  json j = small_tokenizer();
  j["added_tokens"] = json::array();
  j["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFKC"}]})");
  // Fullwidth ａ (U+FF41) is "a" after NFKC.
  EXPECT_EQ(Encoder(load(j)).encode("\xEF\xBD\x81" "b"), (Ids{4}));
  // ByteLevel alone with GPT-2's pattern and add_prefix_space: "ab" becomes " ab" → Ġab.
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = json::parse(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})");
  EXPECT_EQ(Encoder(load(j)).encode("ab"), (Ids{7}));
  EXPECT_EQ(Encoder(load(j)).encode("ab ab"), (Ids{7, 7}));
}

TEST(Bpe, TextMustBeWellFormedUtf8) {
  Encoder e(load(small_tokenizer()));
  Ids ids = {99};
  for (const std::string& bad : {std::string("ab\xC3"), std::string("ab\xC0\x80"), std::string("ab\xED\xA0\x80"),
                                std::string("ab\xF4\x90\x80\x80"), std::string("ab\x80")}) {
    const std::string message = error_of([&] { e.encode_append(bad, ids); });
    EXPECT_NE(message.find("not well-formed UTF-8"), std::string::npos) << message;
    EXPECT_NE(message.find("at byte 2"), std::string::npos) << message;
    EXPECT_EQ(ids, Ids{99});  // left as it was
  }
}

TEST(Bpe, BadTokenizerFilesAreNamed) {
  auto message = [](const std::function<void(json&)>& edit) {
    json j = small_tokenizer();
    edit(j);
    return error_of([&] { Tokenizer::from_json_text(j.dump(), "t.json"); });
  };
  auto has = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos ? ::testing::AssertionSuccess()
                                                 : ::testing::AssertionFailure() << text;
  };
  EXPECT_TRUE(has(error_of([] { Tokenizer::from_json_text("{\"model\": ", "t.json"); }), "t.json: not a tokenizer.json"));
  EXPECT_TRUE(has(error_of([] { Tokenizer::load("/nonexistent/tokenizer.json"); }), "/nonexistent/tokenizer.json"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["type"] = "WordPiece"; }), "only byte-level BPE"));
  EXPECT_TRUE(has(message([](json& j) { j["model"].erase("merges"); }), "model.merges is missing"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["merges"] = 3; }), "model.merges is not a list"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["merges"][1] = "bc"; }), "model.merges[1] = \"bc\" is not two tokens"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["merges"][1] = "b d"; }), "model.merges[1]: \"d\" is not in model.vocab"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["merges"][1] = "c a"; }), "\"ca\" is not in model.vocab"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["vocab"] = json::object(); }), "model.vocab has no tokens"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["dropout"] = 0.1; }), "dropout"));
  EXPECT_TRUE(has(message([](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }), "end_of_word_suffix"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "([a-z]"; }),
                  "pretokenizers[1].pattern.Regex: the regex does not compile"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "\\A"; }),
                  "is not supported: \\A is not an escape"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious"; }),
                  "behavior \"MergedWithPrevious\" with invert false is not supported"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"]["pretokenizers"][2]["type"] = "Metaspace"; }),
                  "\"Metaspace\": not supported"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"]["pretokenizers"].erase(2); }), "has no ByteLevel step"));
  EXPECT_TRUE(has(message([](json& j) { j["pre_tokenizer"] = nullptr; }), "pre_tokenizer is missing"));
  EXPECT_TRUE(has(message([](json& j) { j["normalizer"] = json{{"type", "Lowercase"}}; }), "\"Lowercase\": not supported"));
  EXPECT_TRUE(has(message([](json& j) { j["added_tokens"][0]["lstrip"] = "yes"; }), "added_tokens[0].lstrip is not true or false"));
}

// ---- the JavaScript regex dialect on PCRE2 ----

// The matches of a JavaScript pattern over `text`, as JavaScript's matchAll gives them.
std::vector<std::string> js_matches(const std::string& pattern, const std::string& text) {
  const tokenize::Regex regex(tokenize::js_regex_to_pcre2(pattern), "test");
  tokenize::MatchScratch scratch;
  std::vector<std::string> out;
  tokenize::for_each_js_match(regex, scratch, text, [&](std::size_t b, std::size_t e) { out.push_back(text.substr(b, e - b)); });
  return out;
}
using Strings = std::vector<std::string>;

TEST(BpeRegex, JavaScriptClassesKeepTheirJavaScriptMeaning) {
  // \s: U+FEFF and U+00A0 are whitespace in JavaScript, U+0085 and U+180E are not (PCRE2's \s says the opposite).
  EXPECT_EQ(js_matches("\\s+", "a\xEF\xBB\xBF\xC2\xA0" "b\xC2\x85" "c\xE1\xA0\x8E"), (Strings{"\xEF\xBB\xBF\xC2\xA0"}));
  EXPECT_EQ(js_matches("[^\\S]", "a b"), (Strings{" "}));
  EXPECT_EQ(js_matches("\\S+", "a\xC2\x85 b"), (Strings{"a\xC2\x85", "b"}));
  // \d and \w are ASCII: Arabic-Indic digits and é are neither.
  EXPECT_EQ(js_matches("\\d+", "12\xD9\xA3"), (Strings{"12"}));
  EXPECT_EQ(js_matches("\\w+", "caf\xC3\xA9_1"), (Strings{"caf", "_1"}));
  EXPECT_EQ(js_matches("\\bx", "x \xC3\xA9x ax"), (Strings{"x", "x"}));
  // '.' stops at \r, \n, U+2028; [^] matches anything; [] nothing.
  EXPECT_EQ(js_matches(".+", "a\rb\xE2\x80\xA8" "c"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(js_matches("[^]+", "a\rb"), (Strings{"a\rb"}));
  EXPECT_TRUE(js_matches("a[]", "aaa").empty());
  // \u escapes, a surrogate pair written as two, \u{...}; \v is only U+000B; $ is only the end.
  EXPECT_EQ(js_matches("\\u00e9|\\uD83D\\uDE00|\\u{1F601}", "\xC3\xA9\xF0\x9F\x98\x80\xF0\x9F\x98\x81"),
            (Strings{"\xC3\xA9", "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x81"}));
  EXPECT_EQ(js_matches("\\v", "\n\x0B"), (Strings{"\x0B"}));
  EXPECT_EQ(js_matches("a$", "a\n"), Strings{});
  // Unicode properties, including JavaScript's Key=Value spelling.
  EXPECT_EQ(js_matches("\\p{L}+", "ab1\xE4\xBD\xA0"), (Strings{"ab", "\xE4\xBD\xA0"}));
  EXPECT_EQ(js_matches("\\p{Script=Han}+", "ab\xE4\xBD\xA0"), (Strings{"\xE4\xBD\xA0"}));
  // A literal '[' inside a class is not a POSIX class.
  EXPECT_EQ(js_matches("[[:a]+", "[:a]"), (Strings{"[:a"}));
}

TEST(BpeRegex, EmptyMatchesStepOneCodePointAsMatchAllDoes) {
  // After an empty match the search resumes one code point further (é is two bytes, one code point).
  EXPECT_EQ(js_matches("x*", "\xC3\xA9x"), (Strings{"", "x", ""}));
  EXPECT_EQ(js_matches("(?=a)|b", "ab"), (Strings{"", "b"}));
}

TEST(BpeRegex, WhatJavaScriptRefusesIsRefused) {
  EXPECT_NE(error_of([] { tokenize::js_regex_to_pcre2("a\\"); }).find("ends with a backslash"), std::string::npos);
  EXPECT_NE(error_of([] { tokenize::js_regex_to_pcre2("\\uD800"); }).find("lone surrogate"), std::string::npos);
  EXPECT_NE(error_of([] { tokenize::js_regex_to_pcre2("\\z"); }).find("not an escape"), std::string::npos);
  EXPECT_NE(error_of([] { tokenize::js_regex_to_pcre2("[a"); }).find("unterminated character class"), std::string::npos);
  // transformers.js drops the backslash before # & ~ and rewrites a case-insensitive contraction group.
  EXPECT_EQ(tokenize::transformers_js_pattern_fixes("\\#\\&\\~"), "#&~");
  EXPECT_EQ(js_matches(tokenize::transformers_js_pattern_fixes("(?i:'s|'t|'re|'ve|'m|'ll|'d)"), "'S'Re"),
            (Strings{"'S", "'Re"}));
}

// ---- merging ----

TEST(BpeMerge, ScanAndHeapAgreeOnRandomWords) {
  const json j = small_tokenizer();
  const tokenize::HfVocab vocab = tokenize::read_hf_vocab(j, "t");
  const tokenize::BpeModel model = tokenize::build_bpe_model(j["model"], vocab, "t");
  std::mt19937 rng(7);
  tokenize::MergeScratch scratch;
  const std::int32_t letters[] = {0, 1, 2, 3, 11, 12};  // a b c Ġ 1 2
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::int32_t> word(1 + rng() % 200);
    for (auto& s : word) s = letters[rng() % 6];
    std::vector<std::int32_t> scan = word, heap = word;
    tokenize::merge_symbols_scan(model.merges, scan, scratch);
    tokenize::merge_symbols_heap(model.merges, heap, scratch);
    ASSERT_EQ(scan, heap) << "round " << round;
  }
}

TEST(Bpe, CacheAndThreadsGiveTheSameIds) {
  const Tokenizer t = load(small_tokenizer());
  const std::string text = "abc bca aab  x12 <s> c <x> c\n";
  Encoder e(t);
  const Ids first = e.encode(text);
  EXPECT_GT(e.cached_words(), 0u);
  EXPECT_EQ(e.encode(text), first);
  EXPECT_EQ(encode(t, text), first);
  Ids other;
  std::thread worker([&] { other = Encoder(t).encode(text); });
  worker.join();
  EXPECT_EQ(other, first);
}

}  // namespace
}  // namespace hashmem::bpe
