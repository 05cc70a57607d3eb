// UTF-8 validation and JavaScript whitespace (utf8.hpp).
#include "tokenize/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace hashmem::tokenize {

std::size_t invalid_utf8_offset(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Eight ASCII bytes at a time: most text is mostly ASCII.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char lead = s[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    auto continuation = [&](std::size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (lead >= 0xC2 && lead <= 0xDF) {
      if (!continuation(1)) return i;
      i += 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      if (!continuation(1) || !continuation(2)) return i;
      if (lead == 0xE0 && s[i + 1] < 0xA0) return i;   // overlong
      if (lead == 0xED && s[i + 1] >= 0xA0) return i;  // surrogate
      i += 3;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      if (!continuation(1) || !continuation(2) || !continuation(3)) return i;
      if (lead == 0xF0 && s[i + 1] < 0x90) return i;   // overlong
      if (lead == 0xF4 && s[i + 1] >= 0x90) return i;  // above U+10FFFF
      i += 4;
    } else {
      return i;  // a continuation byte, an overlong 2-byte lead (C0, C1) or F5..FF
    }
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool is_js_whitespace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
  return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

std::string_view trim_js_whitespace_end(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    const std::size_t start = previous_code_point_start(text, end);
    std::size_t k = start;
    if (!is_js_whitespace(next_code_point(text, k))) break;
    end = start;
  }
  return text.substr(0, end);
}

std::string_view trim_js_whitespace_start(std::string_view text) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t k = begin;
    if (!is_js_whitespace(next_code_point(text, k))) break;
    begin = k;
  }
  return text.substr(begin);
}

}  // namespace hashmem::tokenize
