// The GPT-2 byte-level alphabet of byte-level BPE tokenizers: each byte 0..255 is written as one code point.
// Printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the other 68 bytes
// take U+0100, U+0101, ... in byte order (so the space 0x20 is "Ġ" U+0120 and the newline 0x0A is "Ċ" U+010A).
//
// Threads: pure constexpr functions.
#pragma once

#include <array>

namespace hashmem::tokenize {

// byte → code point.
constexpr std::array<char32_t, 256> byte_level_alphabet() {
  std::array<char32_t, 256> to_char{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    to_char[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return to_char;
}

// code point → byte, for code points below 324 (the alphabet's largest is U+0143); -1 where a code point is not
// in the alphabet.
constexpr std::array<int, 324> byte_level_decoder() {
  std::array<int, 324> to_byte{};
  to_byte.fill(-1);
  const std::array<char32_t, 256> to_char = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) to_byte[static_cast<std::size_t>(to_char[static_cast<std::size_t>(b)])] = b;
  return to_byte;
}

}  // namespace hashmem::tokenize
