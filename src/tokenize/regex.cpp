// PCRE2 compile and match (regex.hpp).
#include "tokenize/regex.hpp"

#include <algorithm>
#include <cstdint>
#include <new>

#include "hashmem/error.hpp"

namespace hashmem::tokenize {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<const char*>(buffer), n);
}

// The JIT stack grows to this much; deeper matches fail with a named error (PCRE2's own limits bound the
// interpreter the same way).
constexpr std::size_t kJitStackStart = 32 * 1024, kJitStackMax = 4 * 1024 * 1024;
constexpr std::uint64_t kMatchLimitBase = 10'000'000, kMatchLimitPerByte = 64;

}  // namespace

Regex::Regex(const std::string& pcre2_pattern, std::string where) : where_(std::move(where)) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_UNSET_BACKREF, &error, &offset,
                        nullptr);
  if (!code_) {
    throw Error(where_ + ": the regex does not compile: " + pcre2_message(error) + " at offset " +
                std::to_string(offset) + " of the PCRE2 form " + pcre2_pattern);
  }
  // Without JIT support (another architecture, a build without it) pcre2_match interprets: same matches.
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() { pcre2_code_free(code_); }

MatchScratch::MatchScratch() {
  // Enough ovector pairs for match[0]; capture groups are not read.
  data_ = pcre2_match_data_create(1, nullptr);
  context_ = pcre2_match_context_create(nullptr);
  jit_stack_ = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
  if (!data_ || !context_ || !jit_stack_) {
    pcre2_match_data_free(data_);
    pcre2_match_context_free(context_);
    pcre2_jit_stack_free(jit_stack_);
    throw std::bad_alloc();
  }
  pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
}

MatchScratch::~MatchScratch() {
  pcre2_match_data_free(data_);
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(jit_stack_);
}

bool MatchScratch::find(const Regex& regex, std::string_view subject, std::size_t start, std::size_t& begin,
                        std::size_t& end) {
  // PCRE2's default match limit (10^7) bounds one search whatever the subject's length, and a sane pattern over a
  // 20 MB run of spaces needs more (\s*[\r\n]+ backtracks over the whole run). The limit grows with what is left
  // to search, so linear work always fits and a pattern that backtracks without end still stops.
  const std::uint64_t left = subject.size() - start;
  pcre2_set_match_limit(context_, static_cast<std::uint32_t>(std::min<std::uint64_t>(
                                      kMatchLimitBase + kMatchLimitPerByte * left, 0xffffffffu)));
  const int rc = pcre2_match(regex.code(), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start,
                             PCRE2_NO_UTF_CHECK, data_, context_);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    throw Error(regex.where() + ": matching failed at byte " + std::to_string(start) + " of a " +
                std::to_string(subject.size()) + "-byte piece: " + pcre2_message(rc));
  }
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data_);
  begin = ovector[0];
  end = ovector[1];
  // \K in a lookahead can report a match ending before it starts; JavaScript has no \K (the translator refuses
  // it), so this cannot happen, but a reversed range must never reach the callers.
  if (end < begin) end = begin;
  return true;
}

}  // namespace hashmem::tokenize
