#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/output_file.hpp"
#include "test_util.hpp"

namespace hashmem::hashhop {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using testing::ScratchDir;

Params make_params(std::uint64_t seed, std::int64_t chars, std::int64_t hops, std::int64_t hash_length,
                   std::int64_t queries, bool cot) {
  Params p;
  p.seed = seed;
  p.n_chars = chars;
  p.hops = hops;
  p.hash_length = hash_length;
  p.num_queries = queries;
  p.cot = cot;
  return p;
}

std::string generate_json(const Params& p, const ScratchDir& dir) {
  const std::string path = dir.file("sample.jsonl");
  OutputFile out(path);
  write_sample_json(p, out);
  out.commit();
  return testing::read_file(path);
}

// ---- the conformance vectors of ../shared/conformance/hashhop/cases.json (copied to tests/data) ----

ordered_json load_cases() {
  std::ifstream in(HASHMEM_TEST_DATA "/hashhop_cases.json");
  return ordered_json::parse(in);
}

Params case_params(const ordered_json& c) {
  return make_params(c["seed"], c["chars"], c["hops"], c["hash_length"], c["queries"], c["cot"]);
}

TEST(HashHopVectors, EveryCaseByteForByteInMemory) {
  ordered_json cases = load_cases();
  ASSERT_EQ(cases.size(), 5u);
  for (const auto& c : cases) {
    Sample s = generate(case_params(c));
    EXPECT_EQ(s.prompt, c["prompt"].get<std::string>()) << c["seed"];
    EXPECT_EQ(s.completion, c["completion"].get<std::string>()) << c["seed"];
    std::vector<std::pair<std::string, std::string>> expected;
    for (const auto& [k, v] : c["targets"].items()) expected.emplace_back(k, v.get<std::string>());
    EXPECT_EQ(s.targets, expected) << c["seed"];
  }
}

TEST(HashHopVectors, EveryCaseByteForByteStreamed) {
  ScratchDir dir;
  for (const auto& c : load_cases()) {
    // The JSON line must hold exactly the vector's strings, targets in order.
    ordered_json line = ordered_json::parse(generate_json(case_params(c), dir));
    EXPECT_EQ(line["prompt"], c["prompt"]);
    EXPECT_EQ(line["completion"], c["completion"]);
    EXPECT_EQ(line["targets"].dump(), c["targets"].dump());
    EXPECT_EQ(line["params"]["chars"], c["chars"]);
  }
}

// ---- structure and quirks ----

TEST(HashHop, SizeFormulaIsTheOriginals) {
  EXPECT_EQ(num_chains(make_params(0, 300, 3, 8, 1, false)), 6);         // ceil(300 / 57)
  EXPECT_EQ(num_chains(make_params(0, 300'000'000, 2, 16, 1, false)), 4'285'715);
  EXPECT_EQ(num_chains(make_params(0, 70, 2, 16, 1, false)), 1);
  EXPECT_EQ(num_chains(make_params(0, 71, 2, 16, 1, false)), 2);
}

TEST(HashHop, DictSemanticsWithDuplicateHashes) {
  // One-letter hashes: at most 52 distinct first hashes however many chains are drawn.
  Params p = make_params(3, 2000, 3, 1, 5, true);
  const std::int64_t chains = num_chains(p);
  Sample s = generate(p);
  EXPECT_LE(s.targets.size(), 52u);
  EXPECT_LT(static_cast<std::int64_t>(s.targets.size()), chains);
  std::set<std::string> keys;
  for (const auto& [k, v] : s.targets) {
    EXPECT_TRUE(keys.insert(k).second) << "duplicate target key " << k;
    EXPECT_EQ(std::count(v.begin(), v.end(), '='), 2) << v;  // CoT over 3 hops: "H2 = H3 = H4"
  }
}

TEST(HashHop, PromptShape) {
  Params p = make_params(11, 5000, 4, 10, 3, false);
  Sample s = generate(p);
  EXPECT_NE(s.prompt.back(), '\n');
  std::int64_t lines = std::count(s.prompt.begin(), s.prompt.end(), '\n') + 1;
  EXPECT_EQ(lines, num_chains(p) * 4);  // no duplicates at this hash length
  std::int64_t quoted = 0;
  std::size_t pos = 0;
  while ((pos = s.prompt.find(" = '", pos)) != std::string::npos) ++quoted, ++pos;
  EXPECT_EQ(quoted, num_chains(p));  // the last edge of every chain
  EXPECT_EQ(s.completion.rfind("COMPLETION:\nHops=4\n\nCoT=False\n\n", 0), 0u);
  // 5 newlines of header, 2 between the 3 query lines, 1 at the end.
  EXPECT_EQ(std::count(s.completion.begin(), s.completion.end(), '\n'), 5 + 2 + 1);
}

TEST(HashHop, SameSeedSameSampleDifferentSeedDifferentSample) {
  Params p = make_params(42, 3000, 2, 8, 2, false);
  EXPECT_EQ(generate(p).prompt, generate(p).prompt);
  Params q = p;
  q.seed = 43;
  EXPECT_NE(generate(p).prompt, generate(q).prompt);
}

TEST(HashHop, BadParametersAreNamed) {
  auto message = [](const Params& p) {
    try {
      validate(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(make_params(0, 1000, 0, 8, 1, false)).find("hops"), std::string::npos);
  EXPECT_NE(message(make_params(0, 1000, 2, 0, 1, false)).find("hash length"), std::string::npos);
  EXPECT_NE(message(make_params(0, 0, 2, 8, 1, false)).find("chars"), std::string::npos);
  EXPECT_NE(message(make_params(0, -5, 2, 8, 1, false)).find("chars"), std::string::npos);
  EXPECT_NE(message(make_params(0, 100, 2, 8, 100, false)).find("exceed the number of chains"), std::string::npos);
  EXPECT_NE(message(make_params(0, 100, 2, 8, -1, false)).find("queries"), std::string::npos);
  EXPECT_NE(message(make_params(1ull << 32, 100, 2, 8, 1, false)).find("seed"), std::string::npos);
  EXPECT_NE(message(make_params(0, std::int64_t{1} << 40, 1, 1, 1, false)).find("too large"), std::string::npos);
  EXPECT_EQ(message(make_params(0, 100, 2, 8, 2, false)), "no error");
  EXPECT_THROW(generate(make_params(0, 1000, 0, 8, 1, false)), Error);
}

// ---- datasets, scoring and the oracle ----

std::vector<std::pair<std::string, std::string>> targets_of(const DatasetSample& s) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = 0; i < s.targets.size(); ++i) out.emplace_back(s.targets.key(i), s.targets.value(i));
  return out;
}

std::string write_dataset(const ScratchDir& dir, const std::vector<Params>& samples) {
  const std::string path = dir.file("data.jsonl");
  OutputFile out(path);
  for (const Params& p : samples) write_sample_json(p, out);
  out.commit();
  return path;
}

TEST(HashHopDataset, RoundTrip) {
  ScratchDir dir;
  std::vector<Params> params = {make_params(1, 2000, 2, 16, 5, false), make_params(2, 3000, 3, 8, 2, true)};
  const std::string path = write_dataset(dir, params);
  int seen = 0;
  for_each_sample(path, true, [&](std::int64_t i, DatasetSample& read) {
    ++seen;
    Sample s = generate(params[i]);
    EXPECT_EQ(read.prompt, s.prompt);
    EXPECT_EQ(targets_of(read), s.targets);
    EXPECT_EQ(read.params.seed, params[i].seed);
    EXPECT_EQ(read.params.cot, params[i].cot);
    EXPECT_EQ(read.params.num_queries, params[i].num_queries);
  });
  EXPECT_EQ(seen, 2);
  std::vector<DatasetSample> without_prompts = read_dataset(path);
  ASSERT_EQ(without_prompts.size(), 2u);
  EXPECT_TRUE(without_prompts[0].prompt.empty());
  EXPECT_EQ(targets_of(without_prompts[1]), generate(params[1]).targets);
}

TEST(HashHopDataset, MalformedFilesAreClearErrors) {
  ScratchDir dir;
  const std::string good = R"({"params":{"seed":0,"chars":300,"hops":2,"hash_length":8,"queries":1,"cot":false},)"
                           R"("prompt":"a = b","completion":"","targets":{"a":"b"}})";
  struct Case {
    std::string text, expected;
  } cases[] = {
      {"", "holds no samples"},
      {"not json\n", "line 1: a sample must be a JSON object"},
      {good + "\n{\"params\": \n", "line 2: not valid JSON"},
      {"[1,2]\n", "must be a JSON object"},
      {R"({"prompt":"x","targets":{}})", "no \"params\""},
      {R"({"params":{"seed":0,"chars":300,"hops":2,"hash_length":8,"queries":1,"cot":false},"prompt":"x"})",
       "no \"targets\""},
      {R"({"params":{"seed":0,"chars":300,"hops":2,"queries":1,"cot":false},"targets":{}})", "hash_length"},
      {R"({"params":{"seed":0,"chars":"300","hops":2,"hash_length":8,"queries":1,"cot":false},"targets":{}})",
       "params.chars must be an integer"},
      {R"({"params":{"seed":0,"chars":300,"hops":2,"hash_length":8,"queries":1,"cot":1},"targets":{}})",
       "params.cot must be true or false"},
      {R"({"params":{"seed":0,"chars":300,"hops":2,"hash_length":8,"queries":1,"cot":false},"targets":{"a":1}})",
       "target \"a\" must map to a string"},
      {R"({"params":{"seed":0,"chars":300,"hops":0,"hash_length":8,"queries":1,"cot":false},"prompt":"","targets":{}})",
       "hops must be >= 1"},
      {R"({"params":[],"targets":{}})", "\"params\" must be an object"},
  };
  for (const Case& c : cases) {
    testing::write_file(dir.file("bad.jsonl"), c.text);
    try {
      for_each_sample(dir.file("bad.jsonl"), true, [](std::int64_t, DatasetSample&) {});
      ADD_FAILURE() << "no error for: " << c.text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what() << "\nfor: " << c.text;
      EXPECT_NE(std::string(e.what()).find("bad.jsonl"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_dataset(dir.file("missing.jsonl")), Error);
  testing::write_file(dir.file("ok.jsonl"), "\n" + good + "\n\n");
  EXPECT_EQ(read_dataset(dir.file("ok.jsonl")).size(), 1u);
}

TEST(HashHopScore, AnswerText) {
  EXPECT_EQ(answer_text("abc'"), "abc");
  EXPECT_EQ(answer_text("'abc' and more"), "abc");
  EXPECT_EQ(answer_text("  abc  "), "abc");
  EXPECT_EQ(answer_text("abc = def'\nnext"), "abc = def");
  EXPECT_EQ(answer_text(""), "");
}

TEST(HashHopScore, ParseCompletion) {
  auto preds = parse_completion(3, "COMPLETION:\nHops=2\n\nCoT=False\n\nab = 'cd'\nef = 'gh\nnoise\n");
  ASSERT_EQ(preds.size(), 2u);
  EXPECT_EQ(preds[0].sample, 3);
  EXPECT_EQ(preds[0].query, "ab");
  EXPECT_EQ(preds[0].answer, "cd");
  EXPECT_EQ(preds[1].answer, "gh");
}

TEST(HashHopScore, CountsRightWrongMissingUnknownAndRepeated) {
  ScratchDir dir;
  Params p = make_params(5, 3000, 2, 8, 4, false);
  auto dataset = read_dataset(write_dataset(dir, {p}));
  const auto t = targets_of(dataset[0]);
  std::vector<Prediction> preds = {
      {0, t[0].first, t[0].second},  // right
      {0, t[0].first, "zzz"},        // repeated: ignored, the first counts
      {0, t[1].first, "wrong"},      // wrong
      {0, t[2].first, t[2].second},  // right
      {0, t[9].first, t[9].second},  // not one of the 4 queries
      {7, t[3].first, t[3].second},  // no such sample
  };
  ScoreReport r = score(dataset, preds, false);
  EXPECT_EQ(r.queries, 4);
  EXPECT_EQ(r.correct, 2);
  EXPECT_EQ(r.unknown_predictions, 2);
  EXPECT_EQ(r.duplicate_predictions, 1);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].answered, 3);
  EXPECT_DOUBLE_EQ(r.rows[0].accuracy(), 0.5);
  ScoreReport all = score(dataset, preds, true);
  EXPECT_EQ(all.queries, static_cast<std::int64_t>(t.size()));
  EXPECT_EQ(all.correct, 3);
}

TEST(HashHopScore, RawCompletionPredictions) {
  ScratchDir dir;
  Params p = make_params(6, 3000, 3, 8, 3, true);
  std::string dataset_path = write_dataset(dir, {p});
  Sample s = generate(p);
  json line = {{"sample", 0}, {"completion", s.completion}};
  testing::write_file(dir.file("pred.jsonl"), line.dump() + "\n");
  ScoreReport r = score(read_dataset(dataset_path), read_predictions(dir.file("pred.jsonl")), false);
  EXPECT_EQ(r.queries, 3);
  EXPECT_EQ(r.correct, 3);
}

TEST(HashHopScore, MalformedPredictionsAreClearErrors) {
  ScratchDir dir;
  for (std::string text : {std::string(""), std::string("{oops\n"), std::string("[]\n"),
                           std::string(R"({"query":"a","answer":"b"})"), std::string(R"({"sample":-1,"query":"a","answer":"b"})"),
                           std::string(R"({"sample":0,"query":"a"})"), std::string(R"({"sample":0,"completion":5})")}) {
    testing::write_file(dir.file("p.jsonl"), text);
    try {
      read_predictions(dir.file("p.jsonl"));
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("p.jsonl"), std::string::npos) << e.what();
    }
  }
}

TEST(HashHopSolve, OracleScoresPerfectlyOnEveryShape) {
  ScratchDir dir;
  std::vector<Params> params;
  for (std::int64_t hops : {1, 2, 3, 5}) {
    for (bool cot : {false, true}) params.push_back(make_params(100 + hops, 20000, hops, 12, 10, cot));
  }
  std::string dataset_path = write_dataset(dir, params);
  for (bool all : {false, true}) {
    OutputFile out(dir.file("pred.jsonl"));
    SolveStats stats = solve(dataset_path, out, all, nullptr);
    out.commit();
    EXPECT_EQ(stats.samples, 8);
    EXPECT_EQ(stats.ambiguous, 0);
    EXPECT_EQ(stats.unanswered, 0);
    ScoreReport r = score(read_dataset(dataset_path), read_predictions(dir.file("pred.jsonl")), all);
    EXPECT_GT(r.queries, 0);
    EXPECT_EQ(r.correct, r.queries);
    EXPECT_EQ(r.rows.size(), 8u);
  }
}

TEST(HashHopSolve, ShortHashesAreAmbiguousNotWrongByAccident) {
  // With two-letter hashes some chains cross; the oracle must flag ambiguity rather than crash or loop.
  ScratchDir dir;
  std::string dataset_path = write_dataset(dir, {make_params(9, 40000, 4, 2, 50, true)});
  OutputFile out(dir.file("pred.jsonl"));
  SolveStats stats = solve(dataset_path, out, true, nullptr);
  out.commit();
  ScoreReport r = score(read_dataset(dataset_path), read_predictions(dir.file("pred.jsonl")), true);
  EXPECT_GT(stats.ambiguous, 0);
  EXPECT_EQ(stats.unanswered, 0);  // the true chain always exists
  EXPECT_GE(r.correct + stats.ambiguous, r.queries);  // every miss is an ambiguous query
}

// Chains longer than the pipelined walk (hops > 64) go through the depth-first search alone.
TEST(HashHopSolve, LongChainsAreSolvedByTheSearch) {
  ScratchDir dir;
  const std::string dataset_path =
      write_dataset(dir, {make_params(5, 200000, 100, 8, 5, true), make_params(6, 200000, 70, 8, 5, false)});
  OutputFile out(dir.file("pred.jsonl"));
  const SolveStats stats = solve(dataset_path, out, true, nullptr);
  out.commit();
  EXPECT_EQ(stats.unanswered, 0);
  EXPECT_EQ(stats.ambiguous, 0);
  const ScoreReport r = score(read_dataset(dataset_path), read_predictions(dir.file("pred.jsonl")), true);
  EXPECT_GT(r.queries, 100);
  EXPECT_EQ(r.correct, r.queries);
}

// ---- found with the fuzz targets (tests/fuzz, docs/fuzzing.md) ----

// A sample line with hops = 10^6, hand-written (params valid: 40 chains of 10^6 hops).
std::string hostile_sample(const std::string& prompt, int targets, bool cot) {
  // (Keys built with append: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.)
  json t = json::object();
  for (int i = 0; i < targets; ++i) t[std::string(i < 40 ? "a" : "k").append(std::to_string(i))] = "x";
  return json{{"params", {{"seed", 1}, {"chars", 200000000}, {"hops", 1000000}, {"hash_length", 1}, {"queries", 40},
                          {"cot", cot}}},
              {"prompt", prompt},
              {"targets", t}}
             .dump() +
         "\n";
}

// solve held hops views for every query at once: 300 queries of 10^6 hops asked for 4.8 GB (fuzz_hashhop_dataset
// out of memory). Memory now follows the paths found.
TEST(HashHopFuzzRegression, MillionHopQueriesWithoutAnswersTakeNoMemory) {
  ScratchDir dir;
  testing::write_file(dir.file("d.jsonl"), hostile_sample("a = b", 300, false));
  OutputFile out(dir.file("pred.jsonl"));
  const SolveStats stats = solve(dir.file("d.jsonl"), out, true, nullptr);
  EXPECT_EQ(stats.queries, 300);
  EXPECT_EQ(stats.unanswered, 300);
}

// Self-loops "aN = aN" and hops 10^6 made every query a full 2^20-step search; the search steps of a dataset are
// now bounded by 2^20 + 16 per byte read (queries past it are unanswered), and a real path of 10^6 hops through a
// loop is still found while the budget lasts.
TEST(HashHopFuzzRegression, SearchTimeIsLinearInTheDataset) {
  ScratchDir dir;
  std::string loops;
  for (int i = 0; i < 40; ++i) loops.append("a").append(std::to_string(i)).append(" = a").append(std::to_string(i)).append("\n");
  testing::write_file(dir.file("d.jsonl"), hostile_sample(loops, 40, true) + hostile_sample("a0 = a0\na0 = 'z'", 1, false));
  OutputFile out(dir.file("pred.jsonl"));
  const SolveStats stats = solve(dir.file("d.jsonl"), out, true, nullptr);
  out.commit();
  EXPECT_EQ(stats.queries, 41);
  EXPECT_EQ(stats.unanswered, 41);  // the budget went to the first sample's loops
  testing::write_file(dir.file("one.jsonl"), hostile_sample("a0 = a0\na0 = 'z'", 1, false));
  OutputFile out2(dir.file("pred2.jsonl"));
  EXPECT_EQ(solve(dir.file("one.jsonl"), out2, true, nullptr).unanswered, 0);
  out2.commit();
  EXPECT_NE(testing::read_file(dir.file("pred2.jsonl")).find(R"("answer":"z")"), std::string::npos);
}

// ---- the CLI: bad input gives one clear line, a non-zero exit, and no file ----

using HashHopCli = testing::CliTest;

TEST_F(HashHopCli, BadInputIsOneClearLineAndNoFile) {
  const std::string out = dir_.file("out.jsonl");
  struct Case {
    std::string args, expected;
  } cases[] = {
      {"--chars 1000 --hops 0", "hops must be >= 1"},
      {"--chars 1000 --hash-length 0", "hash length must be >= 1"},
      {"--chars 0", "chars must be > 0"},
      {"--chars -10", "chars must be > 0"},
      {"--tokens 0", "tokens must be > 0"},
      {"--chars 100 --queries 50", "exceed the number of chains"},
      {"--hops 2", "exactly one of --chars or --tokens"},
      {"--chars 1000 --samples 0", "--samples must be >= 1"},
      {"--chars 1000 --seed 4294967295 --samples 2", "seed must be in"},
  };
  for (const Case& c : cases) {
    auto r = run("hashhop generate " + c.args + " --out " + out);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.args << " -> " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(testing::count_files(dir_.path()), 0) << c.args;
  }
}

TEST_F(HashHopCli, UnwritableOutAndUnreadableInputs) {
  auto r = run("hashhop generate --chars 1000 --out " + dir_.file("no/dir/x.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot create output file"), std::string::npos) << r.err;
  r = run("hashhop generate --chars 1000 --out " + dir_.path().string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;

  r = run("hashhop score --dataset " + dir_.file("missing.jsonl") + " --predictions " + dir_.file("p.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
  testing::write_file(dir_.file("garbage.jsonl"), "{\"params\": {\"seed\": 1,");
  r = run("hashhop solve --dataset " + dir_.file("garbage.jsonl") + " --out " + dir_.file("pred.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("pred.jsonl")));

  ASSERT_EQ(run("hashhop generate --chars 3000 --out " + dir_.file("d.jsonl")).exit_code, 0);
  testing::write_file(dir_.file("bad-pred.jsonl"), "{\"sample\": 0, \"query\": \"x\"}\n");
  r = run("hashhop score --dataset " + dir_.file("d.jsonl") + " --predictions " + dir_.file("bad-pred.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad-pred.jsonl' line 1: needs \"query\" and \"answer\""), std::string::npos) << r.err;
  r = run("hashhop score --dataset " + dir_.file("d.jsonl") + " --predictions " + dir_.file("nope.jsonl"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
}

TEST_F(HashHopCli, FailedRunKeepsTheExistingOutput) {
  const std::string out = dir_.file("out.jsonl");
  testing::write_file(out, "precious\n");
  testing::write_file(dir_.file("garbage.jsonl"), "not json\n");
  auto r = run("hashhop solve --dataset " + dir_.file("garbage.jsonl") + " --out " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(testing::read_file(out), "precious\n");
  EXPECT_EQ(testing::count_files(dir_.path()), 2);
}

TEST_F(HashHopCli, InterruptedGenerationLeavesNoFile) {
  // SIGTERM while the (temporary) output is being written: neither the output nor the temporary remains.
  const std::string dir = dir_.path().string();
  const std::string script =
      "sh -c '" + std::string(HASHMEM_CLI) + " hashhop generate --chars 30000000 --samples 500 --out " + dir +
      "/out.jsonl 2>/dev/null & p=$!; i=0; "
      "while ! ls " + dir + "/out.jsonl.tmp-* >/dev/null 2>&1 && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
      "ls " + dir + "/out.jsonl.tmp-* >/dev/null 2>&1 && echo writing; kill -TERM $p; wait $p; echo exit=$?'";
  auto r = testing::run_command(script, "/tmp");
  EXPECT_NE(r.out.find("writing"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("exit=143"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(testing::count_files(dir_.path()), 0);
}

TEST_F(HashHopCli, GenerateSolveScorePipeline) {
  const std::string data = dir_.file("d.jsonl"), pred = dir_.file("p.jsonl");
  auto r = run("hashhop generate --seed 7 --tokens 2000 --hops 3 --hash-length 8 --queries 4 --cot --samples 3 --out " +
               data + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = json::parse(r.out);
  EXPECT_EQ(summary["samples"].size(), 3u);
  EXPECT_EQ(summary["samples"][2]["seed"], 9);
  auto lines = testing::read_file(data);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3);
  // Sample i is seeded S+i: line 2 equals a single generation with seed 9.
  Sample third = generate(make_params(9, 6000, 3, 8, 4, true));
  auto line2 = json::parse(lines.substr(lines.find('\n', lines.find('\n') + 1) + 1));
  EXPECT_EQ(line2["prompt"], third.prompt);

  r = run("hashhop solve --dataset " + data + " --out " + pred + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["queries"], 12);
  r = run("hashhop score --dataset " + data + " --predictions " + pred + " --json --min-accuracy 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = json::parse(r.out);
  EXPECT_EQ(report["accuracy"], 1.0);
  EXPECT_EQ(report["rows"][0]["tokens"], 2000);
  r = run("hashhop score --dataset " + data + " --predictions " + pred);
  EXPECT_NE(r.out.find("100.00%"), std::string::npos) << r.out;
}

TEST_F(HashHopCli, HelpAndVersion) {
  for (std::string cmd : {"", "hashhop", "hashhop generate", "hashhop score", "hashhop solve", "bench",
                          "bench hashhop"}) {
    auto r = run(cmd + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
  auto r = run("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(version()), std::string::npos);
}

// ---- against the executable Python model of the original (../shared/reference/hashhop_rng_model.py) ----

// Runs bench/hashhop_python.py over parameter sets and returns its output lines.
std::vector<std::string> python_samples(const ScratchDir& dir, const std::vector<Params>& params, const char* impl) {
  std::string params_text;
  for (const Params& p : params) {
    params_text += json{{"seed", p.seed},   {"chars", p.n_chars},         {"hops", p.hops},
                        {"hash_length", p.hash_length}, {"queries", p.num_queries}, {"cot", p.cot}}
                       .dump() +
                   "\n";
  }
  testing::write_file(dir.file("params.jsonl"), params_text);
  const std::string cmd = std::string(HASHMEM_SYSTEM_PYTHON) + " " HASHMEM_SOURCE_DIR "/bench/hashhop_python.py --impl " +
                          impl + " --shared " HASHMEM_SHARED_DIR " --params " + dir.file("params.jsonl") +
                          " --out " + dir.file("python.jsonl");
  auto r = testing::run_command(cmd, dir.path().string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream in(testing::read_file(dir.file("python.jsonl")));
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

std::vector<Params> random_params(int count, std::uint64_t rng_seed) {
  std::mt19937_64 rng(rng_seed);
  std::vector<Params> out;
  for (int i = 0; i < count; ++i) {
    Params p;
    p.seed = rng() & 0xffffffffu;
    // A third of the cases use 1-3 letter hashes, where duplicate keys and crossing chains occur.
    p.hash_length = i % 3 == 0 ? 1 + static_cast<std::int64_t>(rng() % 3) : 1 + static_cast<std::int64_t>(rng() % 20);
    p.hops = 1 + static_cast<std::int64_t>(rng() % 6);
    p.n_chars = 1 + static_cast<std::int64_t>(rng() % 6000);
    const std::int64_t chains = num_chains(p);
    p.num_queries = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(std::min<std::int64_t>(chains, 12) + 1));
    p.cot = rng() & 1;
    out.push_back(p);
  }
  return out;
}

TEST(HashHopConformance, ByteIdenticalToThePythonModelOn200RandomParameterSets) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  ScratchDir dir;
  std::vector<Params> params = random_params(200, 20261122);
  std::vector<std::string> expected = python_samples(dir, params, "model");
  ASSERT_EQ(expected.size(), params.size());
  int with_duplicates = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(generate_json(params[i], dir), expected[i]) << "parameter set " << i << ": seed " << params[i].seed
                                                          << " chars " << params[i].n_chars << " L "
                                                          << params[i].hash_length;
    with_duplicates += static_cast<std::int64_t>(generate(params[i]).targets.size()) < num_chains(params[i]);
  }
  EXPECT_GT(with_duplicates, 20);  // the duplicate-hash paths really were exercised
}

TEST(HashHopConformance, NumpyAnchorMatchesToo) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  if (testing::run_command(std::string(HASHMEM_SYSTEM_PYTHON) + " -c 'import numpy'", "/tmp").exit_code != 0) {
    GTEST_SKIP() << "skipped: numpy is not installed for " HASHMEM_SYSTEM_PYTHON;
  }
  ScratchDir dir;
  std::vector<Params> params = random_params(40, 7);
  std::vector<std::string> expected = python_samples(dir, params, "numpy");
  ASSERT_EQ(expected.size(), params.size());
  for (std::size_t i = 0; i < params.size(); ++i) EXPECT_EQ(generate_json(params[i], dir), expected[i]) << i;
}

}  // namespace
}  // namespace hashmem::hashhop
