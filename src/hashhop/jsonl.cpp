#include "hashhop/jsonl.hpp"

#include <cstring>
#include <unistd.h>
#include <vector>

#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"

namespace hashmem::hashhop {

void check_json(simdjson::error_code error, const std::string& wrong_type_message) {
  if (!error) return;
  if (error == simdjson::INCORRECT_TYPE) throw Error(wrong_type_message);
  throw Error(std::string("not valid JSON: ") + simdjson::error_message(error));
}

void for_each_json_line(const std::string& path, const char* what,
                        const std::function<void(std::int64_t, simdjson::ondemand::document&)>& fn) {
  MappedFile file(path);
  const std::string_view text = file.view();
  // Bytes after the file's end up to the page boundary are readable (zero) in the mapping.
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGE_SIZE));
  const std::size_t readable = (text.size() + page - 1) / page * page;
  simdjson::ondemand::parser parser;
  std::vector<char> padded;
  std::size_t pos = 0;
  std::int64_t line_number = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    ++line_number;
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = std::string(what) + " '" + path + "' line " + std::to_string(line_number);
    const std::size_t offset = static_cast<std::size_t>(line.data() - text.data());
    const char* json = line.data();
    std::size_t capacity = readable - offset;
    if (capacity < line.size() + simdjson::SIMDJSON_PADDING) {
      padded.assign(line.size() + simdjson::SIMDJSON_PADDING, ' ');
      std::memcpy(padded.data(), line.data(), line.size());
      json = padded.data();
      capacity = padded.size();
    }
    try {
      simdjson::ondemand::document doc;
      check_json(parser.iterate(json, line.size(), capacity).get(doc), "not valid JSON");
      fn(line_number, doc);
      if (!doc.current_location().error()) throw Error("not valid JSON: trailing content after the object");
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    } catch (const simdjson::simdjson_error& e) {
      throw Error(where + ": not valid JSON: " + e.what());
    }
  }
}

}  // namespace hashmem::hashhop
