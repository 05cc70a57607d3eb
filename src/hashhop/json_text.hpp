// Internal: writing JSON pieces straight into a sink (OutputFile or a string builder).
// HashHop text is letters, spaces, '=' and quotes, which need no escaping; anything else goes through
// nlohmann::json's escaper so the output is always valid JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "hashmem/hashhop.hpp"

namespace hashmem::hashhop {

inline bool needs_json_escape(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) return true;
  }
  return false;
}

template <class Sink>
void append_json_string(Sink& out, std::string_view text) {
  if (needs_json_escape(text)) {
    const std::string quoted = nlohmann::json(std::string(text)).dump();
    out.write(quoted.data(), quoted.size());
    return;
  }
  out.write("\"", 1);
  out.write(text.data(), text.size());
  out.write("\"", 1);
}

inline nlohmann::ordered_json params_to_json(const Params& p) {
  return nlohmann::ordered_json{{"seed", p.seed},   {"chars", p.n_chars},         {"hops", p.hops},
                                {"hash_length", p.hash_length}, {"queries", p.num_queries}, {"cot", p.cot}};
}

inline std::string params_json(const Params& p) { return params_to_json(p).dump(); }

}  // namespace hashmem::hashhop
