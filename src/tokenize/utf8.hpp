// UTF-8 helpers of the tokenizer: strict validation (what the encoder accepts), code point stepping, and the
// whitespace of JavaScript (String.prototype.trim and the regex class \s, which transformers.js relies on).
//
// Threads: pure functions. Strings are UTF-8 bytes; offsets are byte offsets.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hashmem::tokenize {

// The byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates U+D800..U+DFFF, code points above U+10FFFF and truncated sequences are all ill-formed), or npos
// when the whole string is well-formed.
std::size_t invalid_utf8_offset(std::string_view text);

// The length in bytes of the sequence that starts with `lead`. REQUIRES: `lead` starts a well-formed sequence.
inline std::size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Decodes the code point at text[i] and moves i past it. REQUIRES: text is well-formed UTF-8 and i < size.
inline char32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = b(i);
  if (lead < 0x80) {
    i += 1;
    return lead;
  }
  if (lead < 0xE0) {
    const char32_t c = (char32_t{lead & 0x1Fu} << 6) | (b(i + 1) & 0x3Fu);
    i += 2;
    return c;
  }
  if (lead < 0xF0) {
    const char32_t c = (char32_t{lead & 0x0Fu} << 12) | (char32_t{b(i + 1) & 0x3Fu} << 6) | (b(i + 2) & 0x3Fu);
    i += 3;
    return c;
  }
  const char32_t c = (char32_t{lead & 0x07u} << 18) | (char32_t{b(i + 1) & 0x3Fu} << 12) |
                     (char32_t{b(i + 2) & 0x3Fu} << 6) | (b(i + 3) & 0x3Fu);
  i += 4;
  return c;
}

// The start of the code point that ends at text[i - 1]. REQUIRES: well-formed UTF-8, 0 < i <= size.
inline std::size_t previous_code_point_start(std::string_view text, std::size_t i) {
  do {
    --i;
  } while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80);
  return i;
}

// Appends the UTF-8 form of `c`. REQUIRES: c <= U+10FFFF and not a surrogate.
void append_utf8(std::string& out, char32_t c);

// JavaScript's WhiteSpace and LineTerminator: U+0009..U+000D, U+0020, U+00A0, U+1680, U+2000..U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF (the set of String.prototype.trim and of the regex \s).
bool is_js_whitespace(char32_t c);

// `text` without the JavaScript whitespace at its end (trimEnd) or its start (trimStart).
// REQUIRES: well-formed UTF-8.
std::string_view trim_js_whitespace_end(std::string_view text);
std::string_view trim_js_whitespace_start(std::string_view text);

}  // namespace hashmem::tokenize
