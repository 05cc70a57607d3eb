// Small text helpers shared by the corpus cleaners (internal to src/data).
// Threads: pure functions. Units: bytes of UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace hashmem::data {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Runs of ASCII whitespace → one space; leading and trailing whitespace removed.
std::string collapse_whitespace(std::string_view text);

// Appends `raw` as a paragraph (whitespace collapsed, then '\n') unless it is blank.
void append_paragraph(std::string& out, std::string_view raw);

// `text` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view text);

// Number of leading spaces (a tab counts up to the next multiple of 8).
int indentation(std::string_view line);

}  // namespace hashmem::data
