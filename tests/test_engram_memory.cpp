// engram::Memory: the one path tokens → compressed ids → rows → reads, on both tiers; streams continue their
// n-gram history; one rule for token ids (negatives pass through, ids past the tokenizer throw); tables of another
// config or compression are refused; the access profile round-trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hashmem/engram_memory.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

using testing::ScratchDir;

constexpr std::int64_t kVocab = 40, kRowDim = 8;

// A compression folding pairs of tokenizer ids (40 ids → 20 compressed ids).
Compression folding() { return testing::folding_compression(kVocab); }

Layout layout_for(const Compression& c) {
  Config config;
  config.vocab_per_order = {97, 131};
  config.max_ngram = 3;
  config.heads = 2;
  config.layers = {1, 3};
  config.compressed_vocab = c.compressed_vocab;
  config.pad_id = c.lookup[2];
  config.head_dim = kRowDim;
  return make_layout(config);
}

std::vector<std::int64_t> tokens(std::size_t n, std::int64_t seed) {
  std::vector<std::int64_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::int64_t>((i * 7 + static_cast<std::size_t>(seed) * 13) % kVocab);
  return t;
}

struct Fixture {
  ScratchDir dir;
  std::string path = dir.file("engram.safetensors");
  Memory memory{layout_for(folding()), kRowDim, folding()};
  explicit Fixture(store::Tier tier = store::Tier::dram) {
    memory.create(path, 7, 0.5f);
    store::OpenOptions o;
    o.tier = tier;
    o.writable = true;
    if (tier == store::Tier::ssd) o.dram_budget = 24 * kRowDim * 4;
    memory.open(path, o);
  }
};

TEST(EngramMemory, LookupIsCompressThenHashThenTheTablesRows) {
  for (store::Tier tier : {store::Tier::dram, store::Tier::ssd}) {
    Fixture f(tier);
    auto reference = store::Table::open(f.path);
    const std::vector<std::int64_t> ids = tokens(2 * 9, 1);
    Lookup l = f.memory.lookup(ids.data(), 2, 9);
    ASSERT_EQ(l.rows.size(), 2u);
    std::vector<std::int64_t> compressed(ids.size());
    compress_ids(folding(), ids.data(), ids.size(), compressed.data());
    for (std::size_t t = 0; t < 2; ++t) {
      std::vector<std::int64_t> rows(ids.size() * 4);
      hash_batch(f.memory.layout(), t, compressed.data(), 2, 9, rows.data(), true);
      EXPECT_EQ(l.rows[t], rows);
      std::vector<float> got(ids.size() * static_cast<std::size_t>(f.memory.width())), want(got.size());
      f.memory.gather(l, t, got.data());
      reference->gather(static_cast<int>(t), rows.data(), rows.size(), want.data());
      EXPECT_EQ(got, want);
    }
  }
}

TEST(EngramMemory, AStreamContinuesEachSequencesHistory) {
  Fixture f;
  const std::vector<std::int64_t> ids = tokens(3 * 10, 2);
  const Lookup whole = f.memory.lookup(ids.data(), 3, 10);
  // The same three sequences fed 4 + 1 + 5 tokens at a time.
  Stream s = f.memory.stream(3);
  std::vector<std::vector<std::int64_t>> pieces(2);
  for (auto [begin, n] : {std::pair<std::int64_t, std::int64_t>{0, 4}, {4, 1}, {5, 5}}) {
    std::vector<std::int64_t> chunk;
    for (std::int64_t b = 0; b < 3; ++b) chunk.insert(chunk.end(), ids.begin() + b * 10 + begin, ids.begin() + b * 10 + begin + n);
    const Lookup part = f.memory.lookup(chunk.data(), 3, n, &s);
    for (std::size_t t = 0; t < 2; ++t) {
      for (std::int64_t b = 0; b < 3; ++b) {
        for (std::int64_t i = 0; i < n * 4; ++i) {
          EXPECT_EQ(part.rows[t][static_cast<std::size_t>((b * n) * 4 + i)],
                    whole.rows[t][static_cast<std::size_t>((b * 10 + begin) * 4 + i)]);
        }
      }
    }
  }
  // reset: a fresh window hashes as a fresh lookup does.
  s.reset();
  std::vector<std::int64_t> first;
  for (std::int64_t b = 0; b < 3; ++b) first.insert(first.end(), ids.begin() + b * 10, ids.begin() + b * 10 + 4);
  EXPECT_EQ(f.memory.lookup(first.data(), 3, 4, &s).rows, f.memory.lookup(first.data(), 3, 4).rows);
  EXPECT_THROW(f.memory.lookup(first.data(), 2, 6, &s), Error);  // a stream of 3 sequences given 2
}

TEST(EngramMemory, OneRuleForTokenIds) {
  Fixture f;
  // Negative ids pass through compression unchanged (SPEC §2, as compress_ids and the demo do) and hash.
  const std::vector<std::int64_t> ids = {5, -3, 7, 9};
  const Lookup l = f.memory.lookup(ids.data(), 1, 4);
  const std::vector<std::int64_t> compressed = {2, -3, 3, 4};
  std::vector<std::int64_t> rows(16);
  hash_batch(f.memory.layout(), 0, compressed.data(), 1, 4, rows.data(), true);
  EXPECT_EQ(l.rows[0], rows);
  // An id past the tokenizer is named with its position.
  const std::vector<std::int64_t> bad = {1, 2, kVocab};
  try {
    f.memory.lookup(bad.data(), 1, 3);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 40 at position 2"), std::string::npos) << e.what();
  }
}

TEST(EngramMemory, UpdatesReachTheTableAndTheProfileRoundTrips) {
  Fixture f;
  const std::vector<std::int64_t> ids = tokens(12, 3);
  Lookup l = f.memory.lookup(ids.data(), 1, 12, nullptr, /*count=*/true);
  const auto width = static_cast<std::size_t>(f.memory.width());
  std::vector<float> before(12 * width), after(12 * width);
  f.memory.gather(l, 1, before.data());
  const std::vector<float> grads(12 * width, 1.0f);
  store::UpdateOptions sgd;
  sgd.lr = 0.25f;
  f.memory.update(l, 1, grads.data(), sgd);
  Lookup again = f.memory.lookup(ids.data(), 1, 12);
  f.memory.gather(again, 1, after.data());
  // Every value moved by lr × (how often its row occurs in the lookup): duplicates sum their gradients.
  for (std::size_t i = 0; i < 12 * 4; ++i) {
    const auto n = std::count(l.rows[1].begin(), l.rows[1].end(), l.rows[1][i]);
    for (std::size_t d = 0; d < static_cast<std::size_t>(kRowDim); ++d) {
      EXPECT_FLOAT_EQ(after[i * kRowDim + d], before[i * kRowDim + d] - 0.25f * static_cast<float>(n));
    }
  }
  // The profile counted the first lookup only; hot rows rank across tensors, hottest first.
  f.memory.write_profile(f.dir.file("profile.safetensors"));
  Memory other(layout_for(folding()), kRowDim, folding());
  other.read_profile(f.dir.file("profile.safetensors"));
  EXPECT_EQ(other.hot_rows(1000), f.memory.hot_rows(1000));
  const auto hot = f.memory.hot_rows(1000);
  std::size_t distinct = 0;
  for (std::size_t t = 0; t < 2; ++t) {
    std::vector<std::int64_t> r = l.rows[t];
    std::sort(r.begin(), r.end());
    distinct += static_cast<std::size_t>(std::unique(r.begin(), r.end()) - r.begin());
  }
  EXPECT_EQ(hot[0].size() + hot[1].size(), distinct);
  EXPECT_EQ(f.memory.hot_rows(3)[0].size() + f.memory.hot_rows(3)[1].size(), 3u);
}

TEST(EngramMemory, RefusesTablesOfAnotherConfigOrCompression) {
  ScratchDir dir;
  Memory memory(layout_for(folding()), kRowDim, folding());
  EXPECT_THROW(memory.lookup(nullptr, 0, 0), Error);  // before open
  // Another row width.
  Memory wide(layout_for(folding()), kRowDim * 2, folding());
  wide.create(dir.file("wide.safetensors"), 1, 1.0f);
  EXPECT_THROW(memory.open(dir.file("wide.safetensors"), {}), Error);
  // The same shapes made for another compression (same compressed vocab, other lookup).
  Compression other = folding();
  std::swap(other.lookup[0], other.lookup[5]);
  Memory theirs(layout_for(other), kRowDim, other);
  theirs.create(dir.file("theirs.safetensors"), 1, 1.0f);
  try {
    memory.open(dir.file("theirs.safetensors"), {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another tokenizer compression"), std::string::npos) << e.what();
  }
  // A compression whose compressed vocabulary is not the config's.
  EXPECT_THROW(Memory(layout_for(folding()), kRowDim, identity_compression(kVocab)), Error);
}

TEST(EngramMemory, CompressionFilesRoundTripAndRejectDamage) {
  ScratchDir dir;
  Compression c = folding();
  c.keys.assign(static_cast<std::size_t>(c.compressed_vocab), "k");
  write_file_atomically(dir.file("c.json"), compression_json(c));
  const Compression back = read_compression_json(dir.file("c.json"));
  EXPECT_EQ(back.lookup, c.lookup);
  EXPECT_EQ(back.compressed_vocab, c.compressed_vocab);
  EXPECT_EQ(back.tokenizer_entries, c.tokenizer_entries);
  for (const std::string& bad : {std::string("{"), std::string("[]"), std::string("{\"lookup\": [0, -1]}"),
                                 std::string("{\"lookup\": [0, 1], \"compressed_vocab\": 5}"),
                                 std::string("{\"lookup\": [0, \"x\"]}"),
                                 std::string("{\"lookup\": [0, 2]}"),  // past the token count
                                 std::string("{\"lookup\": [0, 9223372036854775807]}"),
                                 std::string("{\"lookup\": [0, 1], \"lookup_sha256\": \"00\"}")}) {
    write_file_atomically(dir.file("bad.json"), bad);
    try {
      read_compression_json(dir.file("bad.json"));
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace hashmem::engram
