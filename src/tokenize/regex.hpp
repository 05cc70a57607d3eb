// PCRE2 (Debian's libpcre2-8) behind the two operations the pre-tokenizer needs, with JavaScript's iteration
// semantics: String.prototype.matchAll (after an empty match the search resumes one code point further, never
// at the same place) over a subject that is exactly the piece being split (lookarounds and ^ $ see only it).
//
// Threads: a Regex is immutable once built and may be used by many threads at once, each with its own
// MatchScratch (match data, JIT stack). Ownership: each object owns its PCRE2 handles.
// Errors: hashmem::Error naming the pattern's origin and PCRE2's message.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace hashmem::tokenize {

class Regex {
 public:
  // Compiles `pcre2_pattern` with UTF | UCP | DOLLAR_ENDONLY | MATCH_UNSET_BACKREF and JIT-compiles it when the
  // library can. Throws Error "<where>: the regex does not compile: <PCRE2 message> at offset N".
  Regex(const std::string& pcre2_pattern, std::string where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  const pcre2_code* code() const { return code_; }
  const std::string& where() const { return where_; }

 private:
  pcre2_code* code_ = nullptr;
  std::string where_;
};

// Per-thread state for matching: match data sized for any pattern, a match context with a JIT stack.
class MatchScratch {
 public:
  MatchScratch();
  ~MatchScratch();
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

  // The first match in subject[start, size) (lookbehinds may see subject[0, start)): sets [begin, end) and
  // returns true, or returns false. REQUIRES: subject is well-formed UTF-8 (it is not checked again) and start
  // is at a code point boundary, <= size. Throws Error naming the regex when PCRE2 gives up: its match limit is
  // 10^7 steps plus 64 per byte left to search, so patterns that work linearly always finish.
  bool find(const Regex& regex, std::string_view subject, std::size_t start, std::size_t& begin, std::size_t& end);

 private:
  pcre2_match_data* data_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  pcre2_jit_stack* jit_stack_ = nullptr;
};

// JavaScript's subject.matchAll(regex): on_match(begin, end) for each match in order, empty ones included.
template <class OnMatch>
void for_each_js_match(const Regex& regex, MatchScratch& scratch, std::string_view subject, OnMatch&& on_match) {
  std::size_t start = 0, begin = 0, end = 0;
  while (start <= subject.size() && scratch.find(regex, subject, start, begin, end)) {
    on_match(begin, end);
    if (end > begin) {
      start = end;
    } else if (end < subject.size()) {  // AdvanceStringIndex: one code point on
      const auto lead = static_cast<unsigned char>(subject[end]);
      start = end + (lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4);
    } else {
      break;
    }
  }
}

}  // namespace hashmem::tokenize
