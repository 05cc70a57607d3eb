// engram::Session: under random add/remove churn, prefills of random lengths and decode steps over random subsets
// of the requests, every gathered value equals the reference — each request's whole token sequence hashed from
// scratch (hash_batch) and its rows gathered from a DRAM-tier table — on the DRAM and SSD tiers, for f32 and bf16
// output and f32/bf16/fp8 tables. Then every misuse the header names is an Error naming the request or problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "hashmem/session.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

using testing::error_of;
using testing::ScratchDir;

constexpr std::int64_t kDim = 32, kTokenizer = 200;

// Tokenizer ids fold in pairs onto the small config's 100 compressed ids.
Compression folding() { return testing::folding_compression(kTokenizer); }

struct Tables {
  ScratchDir dir;
  std::string table, compression;
  explicit Tables(store::DType dtype) : table(dir.file("t.safetensors")), compression(dir.file("c.json")) {
    store::CreateOptions o;
    o.config = testing::small_engram_config();
    o.dim = kDim;
    o.dtype = dtype;
    o.checksum_block = 4096;
    o.seed = 5;
    o.compression_sha256 = lookup_sha256(folding());
    store::create_table(o, table);
    testing::write_file(compression, compression_json(folding()));
  }
};

// The reference: rows of a request's whole sequence, hashed from pad, read from a DRAM-tier table.
class Reference {
 public:
  explicit Reference(const std::string& path)
      : table_(store::Table::open(path)), layout_(make_layout(table_->info().config)) {}

  // Values of tokens [from, to) of `sequence`, [to − from, layers, columns, dim], as Out (float or bf16 bits).
  template <class Out>
  std::vector<Out> values(const std::vector<std::int64_t>& sequence, std::size_t from, std::size_t to) {
    const std::int64_t columns = layout_.config.columns(), layers = static_cast<std::int64_t>(layout_.layers.size());
    const std::int64_t width = columns * kDim, n = static_cast<std::int64_t>(to - from);
    std::vector<std::int64_t> compressed(sequence.size());
    if (!sequence.empty()) compress_ids(folding(), sequence.data(), sequence.size(), compressed.data());
    std::vector<Out> out(static_cast<std::size_t>(n * layers * width));
    if (n == 0) return out;
    for (std::int64_t t = 0; t < layers; ++t) {
      std::vector<std::int64_t> rows(sequence.size() * static_cast<std::size_t>(columns));
      hash_batch(layout_, static_cast<std::size_t>(t), compressed.data(), 1,
                 static_cast<std::int64_t>(sequence.size()), rows.data(), /*add_offsets=*/true);
      std::vector<Out> got(static_cast<std::size_t>(n * width));
      store::Ticket ticket = table_->prefetch(static_cast<int>(t), rows.data() + from * columns,
                                              static_cast<std::size_t>(n * columns));
      table_->gather(ticket, got.data());
      for (std::int64_t i = 0; i < n; ++i) {
        std::copy(got.begin() + i * width, got.begin() + (i + 1) * width, out.begin() + (i * layers + t) * width);
      }
    }
    return out;
  }

 private:
  std::unique_ptr<store::Table> table_;
  Layout layout_;
};

std::unique_ptr<Session> open_session(const Tables& tables, store::Tier tier) {
  SessionOptions o;
  o.store.tier = tier;
  o.store.dram_budget = 8192;  // SSD tier: far fewer rows than a step names, so rows are evicted and re-read
  o.compression_path = tables.compression;
  return Session::open(tables.table, o);
}

// The churn: requests come and go, prefills of 0..23 tokens, steps over random subsets in random order, gathered
// all at once or layer by layer; every value compared with the reference.
template <class Out>
void churn(store::DType dtype, store::Tier tier, std::uint64_t seed) {
  SCOPED_TRACE(std::string(store::dtype_name(dtype)) + (tier == store::Tier::ssd ? " ssd" : " dram") +
               (std::is_same_v<Out, float> ? " f32" : " bf16"));
  Tables tables(dtype);
  Reference reference(tables.table);
  const auto session = open_session(tables, tier);
  const std::int64_t per_token = session->values_per_token(), width = session->columns() * session->dim();
  std::mt19937_64 rng(seed);
  auto token = [&] { return static_cast<std::int64_t>(rng() % (kTokenizer + 3)) - 3; };  // a few negatives
  std::map<RequestId, std::vector<std::int64_t>> sequences;
  std::int64_t checked = 0;
  for (int step = 0; step < 80; ++step) {
    if (sequences.empty() || rng() % 3 == 0) {
      const RequestId id = session->add();
      std::vector<std::int64_t> prompt(rng() % 24);
      for (auto& p : prompt) p = token();
      std::vector<Out> got(prompt.size() * static_cast<std::size_t>(per_token));
      session->prefill(id, prompt.data(), static_cast<std::int64_t>(prompt.size()), got.data());
      sequences[id] = prompt;
      ASSERT_EQ(got, reference.values<Out>(prompt, 0, prompt.size())) << "prefill of request " << id;
    }
    if (sequences.size() > 1 && rng() % 4 == 0) {
      auto it = std::next(sequences.begin(), static_cast<std::ptrdiff_t>(rng() % sequences.size()));
      session->remove(it->first);
      sequences.erase(it);
    }
    std::vector<RequestId> ids;
    for (const auto& entry : sequences) {
      if (rng() % 5 != 0) ids.push_back(entry.first);
    }
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<std::int64_t> tokens(ids.size());
    for (std::size_t b = 0; b < ids.size(); ++b) sequences[ids[b]].push_back(tokens[b] = token());
    session->prefetch(ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
    ASSERT_EQ(session->step_batch(), static_cast<std::int64_t>(ids.size()));
    std::vector<Out> got(ids.size() * static_cast<std::size_t>(per_token));
    if (rng() % 2 == 0) {
      session->gather(got.data());
    } else {  // layer by layer, each into its own [B, columns, dim] buffer
      for (std::int64_t layer = 0; layer < session->layers(); ++layer) {
        std::vector<Out> one(ids.size() * static_cast<std::size_t>(width));
        session->gather_layer(layer, one.data());
        testing::place_layer(one, static_cast<std::size_t>(session->layers()), static_cast<std::size_t>(layer),
                             static_cast<std::size_t>(width), got);
      }
    }
    ASSERT_EQ(session->step_batch(), 0);
    for (std::size_t b = 0; b < ids.size(); ++b) {
      const std::vector<std::int64_t>& s = sequences[ids[b]];
      const std::vector<Out> want = reference.values<Out>(s, s.size() - 1, s.size());
      ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin() + static_cast<std::ptrdiff_t>(b) * per_token))
          << "step " << step << ", request " << ids[b] << " at position " << s.size() - 1;
      ASSERT_EQ(session->tokens_seen(ids[b]), static_cast<std::int64_t>(s.size()));
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(Session, ChurnGathersWhatTheDramTierHolds) {
  std::uint64_t seed = 1;
  for (store::DType dtype : {store::DType::f32, store::DType::bf16, store::DType::fp8}) {
    for (store::Tier tier : {store::Tier::dram, store::Tier::ssd}) {
      churn<float>(dtype, tier, seed++);
      churn<std::uint16_t>(dtype, tier, seed++);
    }
  }
}

// A request removed while its step is in flight: the step's gathers still fill its position; the others' rows
// are right; a request added afterwards starts from pad.
TEST(Session, RemoveDuringAStepKeepsTheStepsRows) {
  Tables tables(store::DType::bf16);
  Reference reference(tables.table);
  const auto session = open_session(tables, store::Tier::ssd);
  const RequestId a = session->add(), b = session->add();
  const std::vector<std::int64_t> ids = {b, a}, tokens = {7, 9};
  session->prefetch(ids.data(), tokens.data(), 2);
  session->remove(b);
  std::vector<float> got(2 * static_cast<std::size_t>(session->values_per_token()));
  session->gather(got.data());
  EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + session->values_per_token()), reference.values<float>({7}, 0, 1));
  EXPECT_EQ(std::vector<float>(got.begin() + session->values_per_token(), got.end()), reference.values<float>({9}, 0, 1));
  EXPECT_EQ(session->requests(), std::vector<RequestId>{a});
  const RequestId c = session->add();
  EXPECT_GT(c, b);  // ids are not reused
  std::vector<float> fresh(static_cast<std::size_t>(session->values_per_token()));
  session->prefill(c, tokens.data() + 1, 1, fresh.data());
  EXPECT_EQ(fresh, reference.values<float>({9}, 0, 1));
}

// A batched prefill of several prompts (one empty) continuing their histories equals the reference, on both
// tiers; bad input moves no history.
TEST(Session, PrefillBatchEqualsTheReference) {
  Tables tables(store::DType::fp8);
  Reference reference(tables.table);
  for (store::Tier tier : {store::Tier::dram, store::Tier::ssd}) {
    const auto session = open_session(tables, tier);
    const std::vector<RequestId> ids = {session->add(), session->add(), session->add()};
    const std::int64_t first = 11;
    session->prefill(ids[2], &first, 1, std::vector<float>(static_cast<std::size_t>(session->values_per_token())).data());
    const std::vector<RequestId> order = {ids[2], ids[0], ids[1]};
    const std::vector<std::int64_t> lengths = {3, 0, 5}, tokens = {1, 2, 3, 9, 8, 7, 6, 5};
    std::vector<std::uint16_t> got(8 * static_cast<std::size_t>(session->values_per_token()));
    const std::vector<std::int64_t> bad_lengths = {3, -1, 5}, bad_tokens = {1, 2, 3, 9, 8, 7, 6, kTokenizer};
    EXPECT_NE(error_of([&] { session->prefill_batch(order.data(), bad_lengths.data(), 3, tokens.data(), got.data()); })
                  .find("request " + std::to_string(ids[0]) + ": token count -1"), std::string::npos);
    EXPECT_NE(error_of([&] { session->prefill_batch(order.data(), lengths.data(), 3, bad_tokens.data(), got.data()); })
                  .find("request " + std::to_string(ids[1]) + ": token id 200 at position 4"), std::string::npos);
    const std::vector<RequestId> twice = {ids[0], ids[0]};
    EXPECT_NE(error_of([&] { session->prefill_batch(twice.data(), lengths.data(), 2, tokens.data(), got.data()); })
                  .find("named twice"), std::string::npos);
    session->prefill_batch(order.data(), lengths.data(), 3, tokens.data(), got.data());
    std::vector<std::uint16_t> want = reference.values<std::uint16_t>({11, 1, 2, 3}, 1, 4);
    const std::vector<std::uint16_t> second = reference.values<std::uint16_t>({9, 8, 7, 6, 5}, 0, 5);
    want.insert(want.end(), second.begin(), second.end());
    EXPECT_EQ(got, want);
    EXPECT_EQ(session->tokens_seen(ids[2]), 4);
    EXPECT_EQ(session->tokens_seen(ids[0]), 0);
  }
}

TEST(Session, AnEmptyStepAndAnEmptyPrefillReadNothing) {
  Tables tables(store::DType::f32);
  const auto session = open_session(tables, store::Tier::dram);
  const RequestId a = session->add();
  session->prefill(a, nullptr, 0, static_cast<float*>(nullptr));
  session->prefetch(nullptr, nullptr, 0);
  EXPECT_EQ(error_of([&] { session->prefetch(nullptr, nullptr, 0); }).find("not gathered yet") != std::string::npos, true);
  session->gather_layer(0, static_cast<float*>(nullptr));
  session->gather_layer(1, static_cast<std::uint16_t*>(nullptr));
  EXPECT_EQ(session->tokens_seen(a), 0);
}

TEST(Session, MisuseIsAnErrorNamingTheRequestOrTheProblem) {
  Tables tables(store::DType::f32);
  Reference reference(tables.table);
  const auto session = open_session(tables, store::Tier::dram);
  const RequestId a = session->add(), b = session->add();
  std::vector<float> out(4 * static_cast<std::size_t>(session->values_per_token()));
  const std::int64_t good[] = {5, 6, 7}, bad[] = {5, kTokenizer, 7};
  auto has = [](const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos ? ::testing::AssertionSuccess()
                                                   : ::testing::AssertionFailure() << message;
  };
  EXPECT_TRUE(has(error_of([&] { session->remove(99); }), "no request 99"));
  EXPECT_TRUE(has(error_of([&] { session->prefill(99, good, 3, out.data()); }), "no request 99"));
  EXPECT_TRUE(has(error_of([&] { session->prefill(a, good, -1, out.data()); }), "token count -1"));
  EXPECT_TRUE(has(error_of([&] { session->prefill(a, nullptr, 3, out.data()); }), "null"));
  EXPECT_TRUE(has(error_of([&] { session->tokens_seen(99); }), "no request 99"));
  // A bad token names the request, the id and its position, and leaves the history as it was.
  const std::string message = error_of([&] { session->prefill(a, bad, 3, out.data()); });
  EXPECT_TRUE(has(message, "request " + std::to_string(a) + ": token id 200 at position 1"));
  session->prefill(a, good, 3, out.data());
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 3 * session->values_per_token()),
            reference.values<float>({5, 6, 7}, 0, 3));
  // Decode steps.
  EXPECT_TRUE(has(error_of([&] { session->gather(out.data()); }), "no step in flight"));
  EXPECT_TRUE(has(error_of([&] { session->gather_layer(0, out.data()); }), "no step in flight"));
  const std::vector<RequestId> twice = {a, b, a}, unknown = {a, 42};
  EXPECT_TRUE(has(error_of([&] { session->prefetch(twice.data(), good, 3); }), "named twice in one step (positions 0 and 2)"));
  EXPECT_TRUE(has(error_of([&] { session->prefetch(unknown.data(), good, 2); }), "no request 42"));
  EXPECT_TRUE(has(error_of([&] { session->prefetch(unknown.data(), bad + 1, 1); }), "token id 200"));
  EXPECT_TRUE(has(error_of([&] { session->prefetch(unknown.data(), nullptr, 1); }), "null"));
  EXPECT_TRUE(has(error_of([&] { session->prefetch(unknown.data(), good, -2); }), "batch -2"));
  EXPECT_EQ(session->tokens_seen(a), 3);  // none of those moved a history
  EXPECT_EQ(session->tokens_seen(b), 0);
  const std::vector<RequestId> ab = {a, b};
  session->prefetch(ab.data(), good, 2);
  EXPECT_TRUE(has(error_of([&] { session->prefetch(ab.data(), good, 2); }), "layers not gathered yet: 0, 1"));
  EXPECT_TRUE(has(error_of([&] { session->gather_layer(2, out.data()); }), "layer 2 is not in [0, 2)"));
  EXPECT_TRUE(has(error_of([&] { session->gather_layer(0, static_cast<float*>(nullptr)); }), "out is null"));
  session->gather_layer(1, out.data());
  EXPECT_TRUE(has(error_of([&] { session->gather_layer(1, out.data()); }), "layer 1 of this step was already gathered"));
  EXPECT_TRUE(has(error_of([&] { session->gather(out.data()); }), "layer 1 of this step was already gathered"));
  EXPECT_TRUE(has(error_of([&] { session->prefetch(ab.data(), good, 2); }), "layers not gathered yet: 0 "));
  session->cancel();
  EXPECT_EQ(session->step_batch(), 0);
  // The cancelled step's tokens stay in the histories: the next step continues after them.
  session->prefetch(ab.data(), good + 1, 2);
  session->gather(out.data());
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + session->values_per_token()),
            reference.values<float>({5, 6, 7, 5, 6}, 4, 5));
}

TEST(Session, OpenChecksTheCompression) {
  Tables tables(store::DType::f32);
  SessionOptions o;
  EXPECT_NE(error_of([&] { Session::open(tables.table, o); }).find("was made for a tokenizer compression"), std::string::npos);
  Compression other = folding();
  std::swap(other.lookup[0], other.lookup[2]);
  const std::string other_path = tables.dir.file("other.json");
  testing::write_file(other_path, compression_json(other));
  o.compression_path = other_path;
  EXPECT_NE(error_of([&] { Session::open(tables.table, o); }).find("another tokenizer compression"), std::string::npos);
  EXPECT_NE(error_of([&] { Session::open(tables.dir.file("missing"), o); }).find("missing"), std::string::npos);
  EXPECT_NE(error_of([] { Session(nullptr); }).find("needs a Memory whose table is open"), std::string::npos);
  o.compression_path = tables.compression;
  const auto session = Session::open(tables.table, o);
  EXPECT_EQ(session->layer_ids(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(session->columns(), 4);
  EXPECT_EQ(session->values_per_token(), 2 * 4 * kDim);
}

}  // namespace
}  // namespace hashmem::engram
