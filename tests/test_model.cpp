// The tiny LM through the CLI (`hashmem train` / `generate` run the libtorch process hashmem-model: the test
// binary links libsentencepiece, which cannot share a process with libtorch). Training lowers the loss with and
// without Engram and with each ablation; a run stopped and resumed ends bit-identical to one run straight;
// damaged checkpoints are named; offloaded generation gives the in-DRAM tokens; the KV cache gives the tokens of
// recomputing. Config parsing is tested in-process (no torch). Needs the corpus that ./run prepares.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "hashmem/error.hpp"
#include "hashmem/safetensors.hpp"
#include "hashmem/model.hpp"
#include "hashmem/engram_memory.hpp"
#include "model/run_files.hpp"
#include "test_util.hpp"

namespace hashmem {
namespace {

namespace fs = std::filesystem;

const std::string kCorpus = std::string(HASHMEM_DATA_DIR) + "/corpus";
const std::string kCli = HASHMEM_CLI;

bool have_corpus() { return fs::exists(kCorpus + "/manifest.json"); }

#define REQUIRE_CORPUS() \
  if (!have_corpus()) GTEST_SKIP() << "skipped: " << kCorpus << " is absent (./run prepares it)"

// The quick preset: 60 steps of 8 × 64 tokens.
const std::string kQuick = " --preset quick --corpus " + kCorpus;

testing::CommandResult run(const std::string& args, const testing::ScratchDir& dir) {
  return testing::run_command(kCli + " " + args, dir.path().string());
}

nlohmann::json train_json(const std::string& args, const testing::ScratchDir& dir) {
  const auto r = run("train" + kQuick + " --json " + args, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, false);
}

TEST(ModelConfig, PresetsJsonRoundTripAndValidation) {
  for (const auto& name : model::preset_names()) {
    const model::Config c = model::preset(name);
    model::validate(c);
    const model::Config back = model::config_from_json(model::config_to_json(c), model::Config{}, "test");
    EXPECT_EQ(model::config_to_json(back), model::config_to_json(c)) << name;
  }
  model::Config c = model::config_from_json(R"({"dim": 96, "ablate": ["gate"], "engram_layers": [0, 2]})",
                                            model::preset("tiny"), "t");
  EXPECT_EQ(c.dim, 96);
  EXPECT_TRUE(c.has_ablation("gate"));
  EXPECT_EQ(c.engram_layers, (std::vector<std::int64_t>{0, 2}));
  auto error_of = [](const std::string& json) {
    try {
      model::validate(model::config_from_json(json, model::preset("tiny"), "cfg.json"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of(R"({"dimm": 3})").find("unknown key \"dimm\""), std::string::npos);
  EXPECT_NE(error_of(R"({"dim": "wide"})").find("\"dim\" has the wrong type"), std::string::npos);
  EXPECT_NE(error_of(R"({"dim": 60, "heads": 8})").find("heads"), std::string::npos);
  EXPECT_NE(error_of(R"({"engram_layers": [7]})").find("engram layer 7"), std::string::npos);
  EXPECT_NE(error_of(R"({"ablate": ["everything"]})").find("unknown ablation 'everything'"), std::string::npos);
  EXPECT_NE(error_of(R"({"tokens": 10})").find("one batch"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("cfg.json: not a JSON object"), std::string::npos);
  EXPECT_THROW(model::preset("huge"), Error);
}

// The run directory's other JSON files, read without libtorch (model/run_files.hpp).
TEST(ModelRunFiles, StateAndCompressionRoundTrip) {
  model::RunState s;
  s.step = 2;
  s.first_train_loss = 9.5;
  s.smooth_loss = 8.25;
  s.train_seconds = 3;
  s.metrics = {{1, 64, 9.5, -1, 0.001, 20, 1.5}, {2, 128, 9, 8.75, 0.002, 21, 3}};
  const std::string text = model::run_state_json(s, true, {1000, 100});
  const model::RunState back = model::parse_run_state(text, "state.json");
  EXPECT_EQ(back.step, 2);
  EXPECT_EQ(back.corpus_tokens, (std::vector<std::size_t>{1000, 100}));
  ASSERT_EQ(back.metrics.size(), 2u);
  EXPECT_EQ(back.metrics[1].val_loss, 8.75);
  EXPECT_EQ(model::run_state_json(back, true, back.corpus_tokens), text);
  const engram::Compression c = engram::parse_compression_json(R"({"lookup": [0, 1, 0, 2]})", "compression.json");
  EXPECT_EQ(c.lookup, (std::vector<std::int64_t>{0, 1, 0, 2}));
  EXPECT_EQ(c.compressed_vocab, 3);
  EXPECT_EQ(c.tokenizer_entries, 4);
}

// ---- found by fuzzing (tests/fuzz, docs/fuzzing.md) ----

std::string run_file_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// fuzz_run_state: a state.json whose "format" was not a string let json's type_error escape.
TEST(ModelFuzzRegression, StateWithANonStringFormatIsDamaged) {
  for (const char* text : {R"({"format": 9.1, "step": 1})", R"({"format": ["hashmem-checkpoint"]})", "[1, 2]", "{"}) {
    EXPECT_NE(run_file_error([&] { model::parse_run_state(text, "ck/state.json"); })
                  .find("checkpoint state 'ck/state.json' is damaged"),
              std::string::npos)
        << text;
  }
}

// fuzz_model_config (UBSan): {"dim": 8828888888888888888} passed validate, and 8·dim (the MLP width) overflowed.
// Sizes have upper bounds that keep everything derived from them inside int64.
TEST(ModelFuzzRegression, HugeSizesAreRefusedByValidate) {
  auto message = [](const std::string& json) {
    return run_file_error([&] { model::validate(model::config_from_json(json, model::preset("tiny"), "config.json")); });
  };
  EXPECT_NE(message(R"({"dim": 8828888888888888888})").find("dim must be <= 1048576"), std::string::npos);
  EXPECT_NE(message(R"({"batch": 4611686018427387904, "context": 4})").find("batch must be <= 16777216"),
            std::string::npos);
  EXPECT_NE(message(R"({"engram_heads": 9223372036854775807})").find("engram_heads must be <= 4096"), std::string::npos);
  EXPECT_NE(message(R"({"engram_max_ngram": 100})").find("engram_max_ngram must be <= 64"), std::string::npos);
  EXPECT_EQ(message(R"({"dim": 1048576, "heads": 2, "tokens": 1000000000})"), "no error");
}

// fuzz_run_state (UBSan): json's get<int64>() of 2.7e29 (a float for an integer field) is undefined; integers must
// be integers, numbers numbers, metrics lists of 7, and the error names the field.
TEST(ModelFuzzRegression, StateFieldsOfTheWrongKindAreNamed) {
  const std::string head = R"({"format": "hashmem-checkpoint", "first_train_loss": 9, "smooth_loss": 8.5, "train_seconds": 1, )";
  auto message = [&](const std::string& rest) {
    return run_file_error([&] { model::parse_run_state(head + rest, "state.json"); });
  };
  EXPECT_NE(message(R"("step": 2.7e29, "metrics": []})").find("\"step\" is not a non-negative integer: 2.7e+29"),
            std::string::npos);
  EXPECT_NE(message(R"("step": -1, "metrics": []})").find("\"step\" is not a non-negative integer"), std::string::npos);
  EXPECT_NE(message(R"("step": 1, "metrics": [[1, 512, 9, 8.7, 0.001, 400.5, 1.2], [2.66e29]]})")
                .find("\"metrics[1]\" is not a list of 7 numbers"),
            std::string::npos);
  EXPECT_NE(message(R"("step": 1, "metrics": [[1e30, 512, 9, 8.7, 0.001, 400.5, 1.2]]})")
                .find("\"metrics[0][0]\" is not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(message(R"("step": 1, "metrics": [[1, 2, "x", 8.7, 0.001, 400.5, 1.2]]})").find("\"metrics[0][2]\" is not a number"),
            std::string::npos);
  EXPECT_NE(message(R"("step": 1, "corpus_tokens": [4096, 5.5e20], "metrics": []})")
                .find("\"corpus_tokens[1]\" is not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(message(R"("step": 1, "metrics": {"a": 1}})").find("\"metrics\" is not a list"), std::string::npos);
  EXPECT_NE(message(R"("step": 1})").find("state.json' is damaged"), std::string::npos);  // no metrics
  EXPECT_EQ(message(R"("step": 1, "metrics": []})"), "no error");
}

// fuzz_compression_file: a lookup holding strings let json's type_error escape; floats were truncated and the
// largest int64 overflowed compressed_vocab (ids must be integers below the number of token ids).
TEST(ModelFuzzRegression, CompressionLookupOfNonIdsIsNamed) {
  auto message = [](const std::string& text) {
    return run_file_error([&] { engram::parse_compression_json(text, "c.json"); });
  };
  EXPECT_NE(message(R"({"lookup": ["hello", "e"]})").find("maps token id 0 to \"hello\", not a compressed id in [0, 2)"),
            std::string::npos);
  EXPECT_NE(message(R"({"lookup": [0, 1.5]})").find("maps token id 1 to 1.5"), std::string::npos);
  EXPECT_NE(message(R"({"lookup": [0, 9223372036854775807]})").find("maps token id 1"), std::string::npos);
  EXPECT_NE(message(R"({"lookup": [0, 18446744073709551615]})").find("maps token id 1"), std::string::npos);
  EXPECT_NE(message(R"({"lookup": [0, -1]})").find("maps token id 1 to -1"), std::string::npos);
  EXPECT_NE(message(R"({"lookup": [0, 2]})").find("maps token id 1 to 2"), std::string::npos);
  EXPECT_NE(message(R"({"lookup": {"a": 1}})").find("has no \"lookup\" list"), std::string::npos);
}

TEST(Model, TrainingLowersTheLossWithAndWithoutEngram) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  for (const std::string engram : {"off", "on"}) {
    const nlohmann::json j = train_json("--engram " + engram + " --out " + dir.file(engram) +
                                            (engram == "off" ? " --dump-qkv " + dir.file("qkv.safetensors") : ""), dir);
    ASSERT_FALSE(j.is_discarded()) << engram;
    EXPECT_TRUE(j["finished"].get<bool>());
    EXPECT_EQ(j["steps"].get<int>(), 60);
    EXPECT_LT(j["last_train_loss"].get<double>(), j["first_train_loss"].get<double>() - 0.5) << engram;
    EXPECT_LT(j["val_loss"].get<double>(), 8.5) << engram;  // uniform over 8000 pieces is 8.99
    EXPECT_GT(j["dense_parameters"].get<long long>(), 0);
    EXPECT_GT(j["train_flops_per_token"].get<double>(), 6.0 * j["dense_parameters"].get<double>() * 0.5);
    for (const char* f : {"config.json", "metrics.csv", "summary.json", "tokenizer.model", "checkpoint/model.safetensors",
                          "checkpoint/optimizer.safetensors", "checkpoint/state.json"}) {
      EXPECT_TRUE(fs::exists(dir.file(engram + "/" + f))) << engram << " " << f;
    }
    const std::string csv = testing::read_file(dir.file(engram + "/metrics.csv"));
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 61) << csv;  // header + one row per step
    if (engram == "on") {
      EXPECT_GT(j["table_parameters"].get<long long>(), 0);
      EXPECT_GT(j["val_loss_engram_off"].get<double>(), 0);
      const auto v = run("table verify " + dir.file("on/checkpoint/engram.safetensors"), dir);
      EXPECT_EQ(v.exit_code, 0) << v.err;
      EXPECT_FALSE(fs::exists(dir.file("on/.engram-init.safetensors")));
    } else {
      EXPECT_EQ(j["table_parameters"].get<long long>(), 0);
      EXPECT_FALSE(fs::exists(dir.file("off/checkpoint/engram.safetensors")));
    }
  }
  // Block 0's Q/K/V, as bench attention reads them: [heads 2, 65536 or fewer validation tokens, head dim 32].
  const SafetensorsFile qkv(dir.file("qkv.safetensors"));
  for (const char* name : {"q", "k", "v"}) {
    const auto& t = qkv.get(name, "F32");
    ASSERT_EQ(t.shape.size(), 3u) << name;
    EXPECT_EQ(t.shape[0], 2);
    EXPECT_EQ(t.shape[1], 65536);
    EXPECT_EQ(t.shape[2], 32);
  }
  // The side-by-side table reads both runs.
  const auto cmp = run("lm compare " + dir.file("off") + " " + dir.file("on") + " --json", dir);
  ASSERT_EQ(cmp.exit_code, 0) << cmp.err;
  const auto table = nlohmann::json::parse(cmp.out);
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0]["arm"], "baseline");
  EXPECT_EQ(table[1]["arm"], "engram");
}

TEST(Model, EachAblationTrains) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  const nlohmann::json full = train_json("--tokens 1024 --out " + dir.file("full"), dir);
  for (const std::string a : {"gate", "compression", "conv"}) {
    const nlohmann::json j = train_json("--tokens 1024 --ablate " + a + " --out " + dir.file(a), dir);
    ASSERT_FALSE(j.is_discarded()) << a;
    EXPECT_TRUE(j["finished"].get<bool>()) << a;
    const auto summary = nlohmann::json::parse(testing::read_file(dir.file(a + "/summary.json")));
    EXPECT_EQ(summary["ablate"], nlohmann::json::array({a}));
    if (a == "compression") {
      EXPECT_FALSE(fs::exists(dir.file(a + "/compression.json")));
    } else {
      EXPECT_LT(j["dense_parameters"].get<long long>(), full["dense_parameters"].get<long long>()) << a;
    }
  }
}

// Every attention kind trains and generates (the hashed kinds recompute their window per token).
TEST(Model, EveryAttentionKindTrainsAndGenerates) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  for (const std::string kind : {"torch", "lsh", "bucket", "mixed"}) {
    const nlohmann::json j = train_json("--tokens 2048 --attention " + kind + " --out " + dir.file(kind), dir);
    ASSERT_FALSE(j.is_discarded()) << kind;
    EXPECT_LT(j["last_train_loss"].get<double>(), j["first_train_loss"].get<double>()) << kind;
    const auto g = run("generate --run " + dir.file(kind) + " --prompt 'In the beginning' --tokens 8 --json", dir);
    ASSERT_EQ(g.exit_code, 0) << kind << g.err;
    EXPECT_EQ(nlohmann::json::parse(g.out)["tokens"].size(), 8u) << kind;
  }
  const auto r = run("train --attention sparse --out " + dir.file("x"), dir);
  EXPECT_NE(r.err.find("unknown attention 'sparse'"), std::string::npos) << r.err;
}

TEST(Model, AStoppedAndResumedRunEndsBitIdenticalToOneRunStraight) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  const std::string args = " --tokens 10240 --checkpoint-every 7";  // 20 steps; a checkpoint mid-way too
  train_json(args + " --out " + dir.file("straight"), dir);
  auto r = run("train" + kQuick + args + " --stop-after 9 --out " + dir.file("resumed"), dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stopped early"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("resumed/summary.json")) &&
               nlohmann::json::parse(testing::read_file(dir.file("resumed/summary.json")))["finished"].get<bool>());
  r = run("train --resume --corpus " + kCorpus + " --out " + dir.file("resumed") + " --json", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["finished"].get<bool>());
  EXPECT_EQ(j["steps"].get<int>(), 20);  // the run's, over both calls
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "engram.safetensors", "engram.safetensors.adam",
                        "row-profile.safetensors"}) {
    EXPECT_EQ(testing::read_file(dir.file(std::string("straight/checkpoint/") + f)),
              testing::read_file(dir.file(std::string("resumed/checkpoint/") + f)))
        << f << " differs";
  }
  const auto a = nlohmann::json::parse(testing::read_file(dir.file("straight/summary.json")));
  const auto b = nlohmann::json::parse(testing::read_file(dir.file("resumed/summary.json")));
  EXPECT_EQ(a["val_loss"], b["val_loss"]);
  EXPECT_EQ(a["last_train_loss"], b["last_train_loss"]);
  // The metrics agree row for row but for the timing columns (lr, tokens/s and seconds come after val_loss).
  auto losses = [](const std::string& csv) {
    std::vector<std::string> rows;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) {
      std::size_t cut = 0;
      for (int i = 0; i < 4; ++i) cut = line.find(',', cut) + 1;
      rows.push_back(line.substr(0, cut));
    }
    return rows;
  };
  EXPECT_EQ(losses(testing::read_file(dir.file("straight/metrics.csv"))),
            losses(testing::read_file(dir.file("resumed/metrics.csv"))));
}

TEST(Model, ExistingRunsAreKeptAndBadOptionsAreNamed) {
  testing::ScratchDir dir;
  auto expect_error = [&](const std::string& args, const std::string& fragment) {
    const auto r = run(args, dir);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << args << ": " << r.err;
  };
  expect_error("train --out " + dir.file("x") + " --engram maybe", "--engram must be on or off");
  expect_error("train --out " + dir.file("x") + " --corpus " + dir.file("nowhere"), "nowhere");
  expect_error("train --out " + dir.file("x") + " --dim 60 --heads 8", "heads");
  expect_error("train --out " + dir.file("x") + " --ablate everything", "unknown ablation");
  expect_error("train --out " + dir.file("x") + " --preset huge", "unknown preset 'huge'");
  testing::write_file(dir.file("bad.json"), "{\"layers\": 2, \"colour\": 1}");
  expect_error("train --out " + dir.file("x") + " --config " + dir.file("bad.json"), "unknown key \"colour\"");
  expect_error("train --resume --out " + dir.file("x"), "holds no run to resume");
  expect_error("generate --run " + dir.file("x") + " --prompt hi", "not a run directory");
  if (!have_corpus()) return;
  train_json("--tokens 512 --engram off --out " + dir.file("run"), dir);
  const std::string before = testing::read_file(dir.file("run/checkpoint/model.safetensors"));
  expect_error("train" + kQuick + " --out " + dir.file("run"), "already holds a run");
  expect_error("train --resume --dim 32 --out " + dir.file("run"), "drop the config options");
  // A run interrupted before its first checkpoint: nothing to resume, and it is not silently overwritten.
  fs::create_directories(dir.file("early"));
  testing::write_file(dir.file("early/config.json"), "{}");
  expect_error("train" + kQuick + " --out " + dir.file("early"), "stopped before its first checkpoint");
  EXPECT_EQ(testing::read_file(dir.file("run/checkpoint/model.safetensors")), before);
  expect_error("generate --run " + dir.file("run"), "--prompt");
}

// Flips one byte in the middle of a file.
void damage(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(f.tellg());
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x55);
  f.seekp(size / 2);
  f.write(&c, 1);
}

TEST(Model, DamagedCheckpointsAreNamedNotUsed) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  train_json("--tokens 2048 --stop-after 2 --out " + dir.file("run"), dir);
  const std::string ckpt = dir.file("run/checkpoint");
  fs::copy(ckpt, dir.file("good"), fs::copy_options::recursive);
  auto expect_resume_error = [&](const std::string& fragment) {
    const auto r = run("train --resume --corpus " + kCorpus + " --out " + dir.file("run"), dir);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  };
  auto restore = [&] {
    fs::remove_all(ckpt);
    fs::copy(dir.file("good"), ckpt, fs::copy_options::recursive);
  };
  damage(ckpt + "/model.safetensors");
  expect_resume_error("model.safetensors': tensor");
  expect_resume_error("fails its checksum: the file is damaged");
  const auto g = run("generate --run " + dir.file("run") + " --prompt 'The'", dir);
  EXPECT_NE(g.exit_code, 0);
  EXPECT_NE(g.err.find("the file is damaged"), std::string::npos) << g.err;
  restore();
  fs::resize_file(ckpt + "/optimizer.safetensors", fs::file_size(ckpt + "/optimizer.safetensors") / 2);
  expect_resume_error("optimizer.safetensors' is not a readable safetensors file: ");
  restore();
  damage(ckpt + "/engram.safetensors");
  expect_resume_error("engram.safetensors' is damaged");
  restore();
  testing::write_file(ckpt + "/state.json", "{\"format\": \"hashmem-checkpoint\", \"step\": ");
  expect_resume_error("state.json' is damaged");
  restore();
  fs::remove(ckpt + "/model.safetensors");
  expect_resume_error("incomplete: model.safetensors is missing");
  restore();
  // A crash between the two renames that swap a checkpoint in leaves checkpoint.old: resume takes it.
  fs::rename(ckpt, dir.file("run/checkpoint.old"));
  const auto r = run("train --resume --corpus " + kCorpus + " --out " + dir.file("run") + " --json", dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(ckpt + "/state.json"));
  EXPECT_FALSE(fs::exists(dir.file("run/checkpoint.old")));
}

TEST(Model, OffloadedGenerationGivesTheInDramTokensAndTheCacheTheRecomputedOnes) {
  REQUIRE_CORPUS();
  testing::ScratchDir dir;
  train_json("--tokens 8192 --out " + dir.file("run"), dir);
  const std::string gen = "generate --run " + dir.file("run") + " --prompt 'And God said, Let there be' --tokens 24 --json";
  for (const std::string sampling : {"", " --top-k 20 --temperature 0.9 --seed 3"}) {
    const auto r = run(gen + sampling + " --dram-fraction 0.25 --check-dram", dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tier"], "ssd");
    EXPECT_TRUE(j["dram"]["same_tokens"].get<bool>());
    EXPECT_EQ(j["dram"]["tier"], "dram");
    EXPECT_EQ(j["tokens"].size(), 24u);
    EXPECT_GT(j["hit_ratio"].get<double>(), 0.0);
    EXPECT_LE(j["hit_ratio"].get<double>(), 1.0);
    EXPECT_GT(j["lookups"].get<long long>(), 0);
    EXPECT_LE(j["dram_budget"].get<double>(), 0.25 * j["table_bytes"].get<double>() + 1);
  }
  // The quick preset's context is 64 tokens: prompt + 24 fit, so the cached decode must equal recomputing.
  const auto cached = nlohmann::json::parse(run(gen, dir).out);
  const auto recomputed = nlohmann::json::parse(run(gen + " --no-cache", dir).out);
  EXPECT_EQ(cached["tokens"], recomputed["tokens"]);
  const auto off = run(gen + " --engram-off", dir);
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(nlohmann::json::parse(off.out)["tier"], "none");
}

}  // namespace
}  // namespace hashmem
