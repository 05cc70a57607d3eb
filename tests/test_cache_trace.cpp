// The row traces of `hashmem bench cache` (bench/cache_trace.hpp) on a hand-made byte-level tokenizer: 48 rows
// per token at DeepSeek-V4.1's shape, layer 0's rows equal to engram::hash_batch's row ids, layer 1's offset by
// layer 0's table, documents hashed on their own, and the token limit; HMTOKID1 token-id files; B interleaved
// requests against per-request streaming hashing; the sort-based profile's ranks against store::hottest_rows.
#include <gtest/gtest.h>

#include <random>

#include "bpe_test_tokenizers.hpp"
#include "cache_profile.hpp"
#include "cache_trace.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "store/cache_policy.hpp"
#include "test_util.hpp"

namespace hashmem::bench {
namespace {

struct Fixture {
  testing::ScratchDir dir;
  std::string tokenizer = dir.file("tokenizer.json");
  Fixture() { testing::write_file(tokenizer, testing::small_tokenizer().dump()); }
};

TEST(CacheTrace, RowsAreEachLayersHashesOffsetByTheTablesBefore) {
  Fixture f;
  testing::write_file(f.dir.file("one.txt"), "ab abc aa\n");
  const TraceSource source = make_trace_source(f.tokenizer, "deepseek-v4.1");
  const RowTrace trace = build_trace(source, {f.dir.file("one.txt")}, 0);
  const std::vector<std::int32_t> ids32 = bpe::encode(bpe::Tokenizer::load(f.tokenizer), "ab abc aa\n");
  const std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
  ASSERT_EQ(trace.tokens, static_cast<std::int64_t>(ids.size()));
  const std::size_t columns = 24, n = ids.size();
  ASSERT_EQ(trace.rows.size(), n * 2 * columns);
  std::vector<std::int64_t> compressed(n), hashed(n * columns);
  engram::compress_ids(source.compression, ids.data(), n, compressed.data());
  for (std::size_t li = 0; li < 2; ++li) {
    engram::hash_batch(source.layout, li, compressed.data(), 1, static_cast<std::int64_t>(n), hashed.data(), true, 1);
    const std::int64_t offset = li ? source.layout.layers[0].rows : 0;
    for (std::size_t t = 0; t < n; ++t) {
      for (std::size_t c = 0; c < columns; ++c) {
        EXPECT_EQ(trace.rows[t * 2 * columns + li * columns + c], hashed[t * columns + c] + offset);
      }
    }
  }
  for (std::int64_t r : trace.rows) EXPECT_LT(r, total_rows(source.layout));
}

TEST(CacheTrace, DocumentsAreHashedOnTheirOwnAndTheTokenLimitCuts) {
  Fixture f;
  testing::write_file(f.dir.file("two.txt"), "ab abc\n\nabc ab aa\n");
  testing::write_file(f.dir.file("second.txt"), "abc ab aa\n");
  const TraceSource source = make_trace_source(f.tokenizer, "deepseek-v4.1");
  const RowTrace both = build_trace(source, {f.dir.file("two.txt")}, 0);
  const RowTrace second = build_trace(source, {f.dir.file("second.txt")}, 0);
  EXPECT_EQ(both.documents, 2);
  ASSERT_GT(both.rows.size(), second.rows.size());
  EXPECT_TRUE(std::equal(second.rows.begin(), second.rows.end(), both.rows.end() - static_cast<std::ptrdiff_t>(second.rows.size())));
  const RowTrace cut = build_trace(source, {f.dir.file("two.txt")}, 3);
  EXPECT_EQ(cut.tokens, 3);
  EXPECT_EQ(cut.rows.size(), 3u * 48);
  EXPECT_TRUE(std::equal(cut.rows.begin(), cut.rows.end(), both.rows.begin()));
  EXPECT_EQ(both.document_starts, (std::vector<std::int64_t>{0, both.document_starts[1], both.tokens}));
}

const char* const kDocuments[] = {"ab abc\n", "abc ab aa ab\n", "aa\n", "ab ab abc abc aa\n", "abc\n"};

std::string documents_text() {
  std::string text;
  for (const char* d : kDocuments) text += std::string(text.empty() ? "" : "\n") + d;
  return text;
}

TEST(CacheTrace, TokenIdFilesGiveTheTraceOfTheirText) {
  Fixture f;
  testing::write_file(f.dir.file("docs.txt"), documents_text());
  const bpe::Tokenizer tok = bpe::Tokenizer::load(f.tokenizer);
  data::TokenIds ids;
  ids.vocab_size = static_cast<std::uint64_t>(tok.id_count());
  ids.document_starts = {0};
  for (const char* d : kDocuments) {
    for (std::int32_t id : bpe::encode(tok, d)) ids.ids.push_back(id);
    ids.document_starts.push_back(ids.ids.size());
  }
  {
    OutputFile out(f.dir.file("docs.ids"));
    data::write_token_ids(out, ids);
    out.commit();
  }
  const TraceSource source = make_trace_source(f.tokenizer, "deepseek-v4.1");
  const RowTrace text = build_trace(source, {f.dir.file("docs.txt")}, 0);
  const RowTrace from_ids = build_trace(source, {f.dir.file("docs.ids")}, 0);
  EXPECT_EQ(from_ids.documents, 5);
  EXPECT_EQ(from_ids.document_starts, text.document_starts);
  EXPECT_EQ(from_ids.rows, text.rows);
  EXPECT_EQ(from_ids.text_bytes, 0u);
  const RowTrace cut = build_trace(source, {f.dir.file("docs.ids")}, 4);
  EXPECT_EQ(cut.tokens, 4);
  EXPECT_TRUE(std::equal(cut.rows.begin(), cut.rows.end(), text.rows.begin()));
  // Ids the tokenizer does not have: the error names the file.
  ids.vocab_size = 1u << 20;
  ids.ids.back() = static_cast<std::int32_t>(tok.id_count() + 5);
  {
    OutputFile out(f.dir.file("bad.ids"));
    data::write_token_ids(out, ids);
    out.commit();
  }
  try {
    build_trace(source, {f.dir.file("bad.ids")}, 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.ids"), std::string::npos) << e.what();
  }
}

// B requests decoding different documents, each with its own StreamingHasher (reset at each new document) fed one
// token per step in round-robin order: the rows they issue are interleave's stream.
std::vector<std::int64_t> decode_rows(const TraceSource& source, const std::vector<std::vector<std::int64_t>>& docs,
                                      std::size_t requests) {
  const std::size_t layers = source.layout.layers.size(), columns = 24;
  std::vector<std::vector<std::unique_ptr<engram::StreamingHasher>>> hashers(requests);
  for (auto& h : hashers) {
    for (std::size_t li = 0; li < layers; ++li) h.push_back(std::make_unique<engram::StreamingHasher>(source.layout, li, 1, true));
  }
  struct Active { std::size_t doc, pos, request; };
  std::vector<Active> active;
  std::size_t next = 0;
  std::vector<std::int64_t> rows;
  auto start = [&](std::size_t request) {
    for (auto& h : hashers[request]) h->reset();
    return Active{next++, 0, request};
  };
  for (std::size_t r = 0; r < requests && next < docs.size(); ++r) active.push_back(start(r));
  while (!active.empty()) {
    for (Active& a : active) {
      std::int64_t offset = 0;
      for (std::size_t li = 0; li < layers; ++li) {
        std::int64_t compressed = 0, out[24];
        engram::compress_ids(source.compression, &docs[a.doc][a.pos], 1, &compressed);
        hashers[a.request][li]->push(&compressed, 1, out);
        for (std::size_t c = 0; c < columns; ++c) rows.push_back(out[c] + offset);
        offset += source.layout.layers[li].rows;
      }
      ++a.pos;
    }
    for (Active& a : active) {
      if (a.pos == docs[a.doc].size() && next < docs.size()) a = start(a.request);
    }
    std::erase_if(active, [&](const Active& a) { return a.pos == docs[a.doc].size(); });
  }
  return rows;
}

TEST(CacheTrace, InterleavedRequestsIssueTheRowsOfPerRequestStreamingHashing) {
  Fixture f;
  testing::write_file(f.dir.file("docs.txt"), documents_text());
  const TraceSource source = make_trace_source(f.tokenizer, "deepseek-v4.1");
  const RowTrace trace = build_trace(source, {f.dir.file("docs.txt")}, 0);
  const bpe::Tokenizer tok = bpe::Tokenizer::load(f.tokenizer);
  std::vector<std::vector<std::int64_t>> docs;
  for (const char* d : kDocuments) {
    const std::vector<std::int32_t> ids = bpe::encode(tok, d);
    docs.emplace_back(ids.begin(), ids.end());
  }
  for (std::size_t b : {1, 2, 3, 8}) {
    const Interleaved mixed = interleave({&trace}, static_cast<std::int64_t>(b), 0);
    EXPECT_EQ(mixed.tokens, trace.tokens);
    EXPECT_EQ(mixed.documents, 5);
    EXPECT_EQ(mixed.rows, decode_rows(source, docs, b)) << "B = " << b;
  }
  const Interleaved one = interleave({&trace}, 1, 0);
  EXPECT_TRUE(std::equal(one.rows.begin(), one.rows.end(), trace.rows.begin(), trace.rows.end()));
  EXPECT_THROW(interleave({&trace}, 0, 0), Error);
}

TEST(CacheTrace, MixedDocumentsAreBalancedByTokensAndCutAtTheLimit) {
  Fixture f;
  testing::write_file(f.dir.file("a.txt"), "abc ab aa ab abc\n\naa\n");
  testing::write_file(f.dir.file("b.txt"), "ab\n\nabc\n\naa ab\n");
  const TraceSource source = make_trace_source(f.tokenizer, "deepseek-v4.1");
  const RowTrace a = build_trace(source, {f.dir.file("a.txt")}, 0), b = build_trace(source, {f.dir.file("b.txt")}, 0);
  const Interleaved all = interleave({&a, &b}, 1, 0);
  EXPECT_EQ(all.tokens, a.tokens + b.tokens);
  EXPECT_EQ(all.documents, 5);
  // a's first document comes first (a tie), then b's until b has given as many tokens.
  const std::int64_t a0 = a.document_starts[1], stride = a.rows_per_token;
  EXPECT_TRUE(std::equal(a.rows.begin(), a.rows.begin() + a0 * stride, all.rows.begin()));
  EXPECT_TRUE(std::equal(b.rows.begin(), b.rows.begin() + b.document_starts[1] * stride, all.rows.begin() + a0 * stride));
  const Interleaved cut = interleave({&a, &b}, 2, 3);
  EXPECT_EQ(cut.tokens, 3);
  EXPECT_EQ(cut.rows.size(), static_cast<std::size_t>(3 * stride));
}

TEST(CacheProfile, RanksAreTheOrderOfHottestRows) {
  std::mt19937_64 rng(7);
  const std::vector<std::int64_t> stream = store::zipf_stream(0.9, 5000, 40000, 3);
  std::vector<std::uint32_t> trace(stream.begin(), stream.end());
  const std::vector<std::int64_t> hottest = store::hottest_rows(stream.data(), stream.size(), 1 << 20);
  const RowProfile profile = make_profile(std::move(trace));
  EXPECT_EQ(profile.distinct(), static_cast<std::int64_t>(hottest.size()));
  std::vector<std::uint32_t> query;
  for (std::uint32_t r = 0; r < 6000; r += 1 + static_cast<std::uint32_t>(rng() % 3)) query.push_back(r);
  const std::vector<std::int64_t> ranks = profile_ranks(profile, query);
  std::vector<std::int64_t> expect(query.size(), absent_rank);
  for (std::size_t i = 0; i < hottest.size(); ++i) {
    const auto at = std::lower_bound(query.begin(), query.end(), static_cast<std::uint32_t>(hottest[i]));
    if (at != query.end() && *at == hottest[i]) expect[static_cast<std::size_t>(at - query.begin())] = static_cast<std::int64_t>(i);
  }
  EXPECT_EQ(ranks, expect);
  EXPECT_THROW(profile_ranks(profile, {3, 2}), Error);
  const DistinctRows d = distinct_rows(stream.data(), stream.size());
  EXPECT_EQ(d.rows.size(), hottest.size());
  std::int64_t total = 0;
  for (std::uint32_t c : d.counts) total += c;
  EXPECT_EQ(total, static_cast<std::int64_t>(stream.size()));
}

}  // namespace
}  // namespace hashmem::bench
