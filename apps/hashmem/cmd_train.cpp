// hashmem train: prepares the tokenizer compression here (libsentencepiece), then runs hashmem-train (libtorch)
// beside this executable with the same options. The two libraries cannot share a process (their protobufs clash).
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "child_process.hpp"
#include "cli.hpp"
#include "hashmem/common.hpp"
#include "hashmem/engram.hpp"
#include "train_options.hpp"

namespace hashmem::cli {
namespace {

int run_train(const TrainArgs& a) {
  if (a.engram != "on" && a.engram != "off") throw Error("--engram must be on or off, got '" + a.engram + "'");
  std::filesystem::create_directories(a.o.out);
  std::vector<std::string> argv = {(std::filesystem::path(self_executable()).parent_path() / "hashmem-train").string()};
  for (auto& s : train_arguments(a)) argv.push_back(s);
  if (a.engram == "on") {
    const engram::Compression c = engram::compress_tokenizer(a.o.corpus + "/spm.model");
    const nlohmann::ordered_json j = {{"tokenizer", a.o.corpus + "/spm.model"},
                                      {"tokenizer_entries", c.tokenizer_entries},
                                      {"compressed_vocab", c.compressed_vocab},
                                      {"lookup_sha256", engram::lookup_sha256(c)},
                                      {"lookup", c.lookup}};
    const std::string path = a.o.out + "/compression.json";
    write_file_atomically(path, j.dump() + "\n");
    argv.push_back("--compression");
    argv.push_back(path);
  }
  std::vector<char*> raw;
  for (auto& s : argv) raw.push_back(s.data());
  raw.push_back(nullptr);
  std::fflush(stdout);
  ::execv(raw[0], raw.data());
  throw Error("cannot run '" + argv[0] + "': " + std::strerror(errno));
}

}  // namespace

void register_train(CLI::App& app, Action& action) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* t = app.add_subcommand("train", "Train the tiny LM on the corpus, with or without Engram");
  add_train_options(t, *a);
  t->callback([a, &action] { action = [a] { return run_train(*a); }; });
}

}  // namespace hashmem::cli
