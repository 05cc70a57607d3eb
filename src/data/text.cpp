// Text normalisation and the corpus file format (documents separated by one empty line).
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "data/text.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"

namespace hashmem::data {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if the bytes there are not valid UTF-8
// (stray continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated sequence).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  std::size_t n;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // > U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string normalize_text(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size());
  bool ascii = true;
  for (std::size_t i = 0; i < bytes.size();) {
    const char c = bytes[i];
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      if (c == '\r') {
        text += '\n';
        if (i + 1 < bytes.size() && bytes[i + 1] == '\n') ++i;
      } else if (c == '\t') {
        text += ' ';
      } else if (c == '\n' || (u >= 0x20 && u != 0x7F)) {
        text += c;
      }  // other control characters are dropped
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(bytes, i);
    if (n == 0) {
      text += kReplacement;
      ++i;
      continue;
    }
    const std::string_view seq = bytes.substr(i, n);
    i += n;
    // C1 controls (U+0080..U+009F) and the byte-order mark carry no text.
    if (seq.size() == 2 && static_cast<unsigned char>(seq[0]) == 0xC2 && static_cast<unsigned char>(seq[1]) < 0xA0) {
      continue;
    }
    if (seq == "\xEF\xBB\xBF") continue;
    ascii = false;
    text += seq;
  }
  if (ascii) return text;
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw Error(std::string("ICU NFC instance failed: ") + u_errorName(status));
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(text);
  if (nfc->isNormalized(source, status) && U_SUCCESS(status)) return text;
  status = U_ZERO_ERROR;
  const icu::UnicodeString normalized = nfc->normalize(source, status);
  if (U_FAILURE(status)) throw Error(std::string("ICU NFC normalisation failed: ") + u_errorName(status));
  std::string out;
  normalized.toUTF8String(out);
  return out;
}

std::string collapse_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (is_space(c)) {
      pending_space = !out.empty();
    } else {
      if (pending_space) out += ' ';
      pending_space = false;
      out += c;
    }
  }
  return out;
}

void append_paragraph(std::string& out, std::string_view raw) {
  const std::string paragraph = collapse_whitespace(raw);
  if (paragraph.empty()) return;
  out += paragraph;
  out += '\n';
}

std::string_view trim(std::string_view text) {
  std::size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  return text.substr(b, e - b);
}

int indentation(std::string_view line) {
  int column = 0;
  for (char c : line) {
    if (c == ' ') {
      ++column;
    } else if (c == '\t') {
      column = (column / 8 + 1) * 8;
    } else {
      break;
    }
  }
  return column;
}

void append_document(std::string& corpus, std::string_view text) {
  if (text.empty()) throw Error("append_document: a document must not be empty");
  if (!corpus.empty()) corpus += '\n';
  corpus += text;
  if (text.back() != '\n') corpus += '\n';
}

std::vector<std::string_view> split_documents(std::string_view corpus) {
  std::vector<std::string_view> documents;
  std::size_t start = 0;
  while (start < corpus.size()) {
    // A document ends at the first empty line ("\n\n") or at the end of the text.
    std::size_t end = corpus.find("\n\n", start);
    if (end == std::string_view::npos) {
      documents.push_back(corpus.substr(start));
      break;
    }
    documents.push_back(corpus.substr(start, end + 1 - start));
    start = end + 2;
  }
  return documents;
}

}  // namespace hashmem::data
