// Helpers shared by the test files: scratch directories, running the CLI, reading files.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"

namespace hashmem::testing {

// The message of the hashmem::Error that f throws, or "no error".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// A fresh directory under the system temp dir, removed with its contents at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hashmem-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A small Engram config (two layers, 2-grams and 3-grams, two heads) for store tables in tests.
inline engram::Config small_engram_config() {
  engram::Config c;
  c.vocab_per_order = {300, 500};
  c.max_ngram = 3;
  c.heads = 2;
  c.layers = {1, 2};
  c.compressed_vocab = 100;
  c.pad_id = 2;
  return c;
}

// A tokenizer compression folding `tokenizer_entries` ids in pairs onto half as many compressed ids (id → id / 2).
inline engram::Compression folding_compression(std::int64_t tokenizer_entries) {
  engram::Compression c;
  c.tokenizer_entries = tokenizer_entries;
  c.compressed_vocab = tokenizer_entries / 2;
  for (std::int64_t i = 0; i < tokenizer_entries; ++i) c.lookup.push_back(i / 2);
  return c;
}

// One layer's rows [batch, width] into their place in all[batch, layers, width] (a session's per-layer gather
// laid out as its whole gather).
template <class T>
void place_layer(const std::vector<T>& layer_rows, std::size_t layers, std::size_t layer, std::size_t width,
                 std::vector<T>& all) {
  for (std::size_t b = 0; b * width < layer_rows.size(); ++b) {
    std::copy(layer_rows.begin() + static_cast<std::ptrdiff_t>(b * width),
              layer_rows.begin() + static_cast<std::ptrdiff_t>((b + 1) * width),
              all.begin() + static_cast<std::ptrdiff_t>((b * layers + layer) * width));
  }
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

struct CommandResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a shell command line, capturing stdout and stderr separately.
inline CommandResult run_command(const std::string& command, const std::string& scratch_dir) {
  const std::string out_path = scratch_dir + "/.cmd-stdout", err_path = scratch_dir + "/.cmd-stderr";
  int status = std::system((command + " >" + out_path + " 2>" + err_path).c_str());
  CommandResult r{WIFEXITED(status) ? WEXITSTATUS(status) : 128, read_file(out_path), read_file(err_path)};
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return r;
}

// Number of regular files in a directory (to prove no partial or temporary file was left behind).
inline int count_files(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

inline bool have_system_python() { return ::access(HASHMEM_SYSTEM_PYTHON, X_OK) == 0; }
inline bool have_shared() { return std::filesystem::exists(HASHMEM_SHARED_DIR "/SPEC.md"); }

// Skips the calling test, naming what is missing, unless ../shared and the system Python are there. A macro:
// GTEST_SKIP() returns from the function it is written in, so inside a helper it would not stop the test.
#define HASHMEM_REQUIRE_PYTHON_AND_SHARED()                                                              \
  do {                                                                                                   \
    if (!::hashmem::testing::have_shared())                                                              \
      GTEST_SKIP() << "skipped: " HASHMEM_SHARED_DIR " is absent (CI has it beside the clone)";          \
    if (!::hashmem::testing::have_system_python()) GTEST_SKIP() << "skipped: " HASHMEM_SYSTEM_PYTHON " is missing"; \
  } while (0)

#ifdef HASHMEM_CLI
// A fixture for tests of the CLI: run(args) runs build/bin/hashmem in a scratch directory; file(name, text)
// writes a file there and returns its path. (Needs <gtest/gtest.h> before this header.)
class CliTest : public ::testing::Test {
 protected:
  CommandResult run(const std::string& args) {
    return run_command(std::string(HASHMEM_CLI) + " " + args, dir_.path().string());
  }
  std::string file(const std::string& name, const std::string& text) {
    write_file(dir_.file(name), text);
    return dir_.file(name);
  }
  ScratchDir dir_;
};
#endif

}  // namespace hashmem::testing
