// The row traces of `hashmem bench cache` (bench/cache_trace.hpp) on a hand-made byte-level tokenizer: 48 rows
// per token at DeepSeek-V4.1's shape, layer 0's rows equal to engram::hash_batch's row ids, layer 1's offset by
// layer 0's table, documents hashed on their own, and the token limit.
#include <gtest/gtest.h>

#include "bpe_test_tokenizers.hpp"
#include "cache_trace.hpp"
#include "hashmem/bpe.hpp"
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
}

}  // namespace
}  // namespace hashmem::bench
