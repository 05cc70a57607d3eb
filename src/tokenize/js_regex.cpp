// JavaScript regex syntax → PCRE2 syntax (js_regex.hpp).
#include "tokenize/js_regex.hpp"

#include <cstdio>
#include <utility>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem::tokenize {
namespace {

using Ranges = std::vector<std::pair<char32_t, char32_t>>;  // sorted, disjoint, inclusive

const Ranges kJsSpace = {{0x09, 0x0D}, {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
                         {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
const Ranges kJsDigit = {{'0', '9'}};
const Ranges kJsWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};

// Every code point UTF-8 can hold (no surrogates) outside `ranges`.
Ranges complement(const Ranges& ranges) {
  Ranges out;
  char32_t next = 0;
  auto add = [&](char32_t lo, char32_t hi) {  // [lo, hi] minus the surrogates
    if (lo > hi) return;
    if (hi < 0xD800 || lo > 0xDFFF) {
      out.emplace_back(lo, hi);
      return;
    }
    if (lo < 0xD800) out.emplace_back(lo, 0xD7FF);
    if (hi > 0xDFFF) out.emplace_back(0xE000, hi);
  };
  for (const auto& [lo, hi] : ranges) {
    if (lo > next) add(next, lo - 1);
    next = hi + 1;
  }
  add(next, 0x10FFFF);
  return out;
}

std::string code_point(char32_t c) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "\\x{%X}", static_cast<unsigned>(c));
  return buffer;
}

// The ranges as the inside of a PCRE2 class.
std::string class_body(const Ranges& ranges) {
  std::string out;
  for (const auto& [lo, hi] : ranges) {
    out += code_point(lo);
    if (hi != lo) {
      out += '-';
      out += code_point(hi);
    }
  }
  return out;
}

const std::string kWordClass = "[" + class_body(kJsWord) + "]";

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// \p{...} / \P{...}: JavaScript's Key=Value forms in PCRE2's spelling.
std::string property(char kind, std::string_view name) {
  const std::size_t eq = name.find('=');
  std::string pcre;
  if (eq == std::string_view::npos) {
    pcre = std::string(name);
  } else {
    const std::string_view key = name.substr(0, eq), value = name.substr(eq + 1);
    if (key == "General_Category" || key == "gc") {
      pcre = std::string(value);
    } else if (key == "Script" || key == "sc") {
      pcre = "sc:" + std::string(value);
    } else if (key == "Script_Extensions" || key == "scx") {
      pcre = "scx:" + std::string(value);
    } else {
      throw Error("unknown Unicode property key in \\" + std::string(1, kind) + "{" + std::string(name) + "}");
    }
  }
  return std::string("\\") + kind + "{" + pcre + "}";
}

class Translator {
 public:
  explicit Translator(std::string_view js) : js_(js) {}

  std::string run() {
    while (i_ < js_.size()) {
      const char c = js_[i_];
      if (c == '\\') {
        escape();
      } else if (in_class_) {
        if (c == ']') {
          in_class_ = false;
          out_ += ']';
        } else if (c == '[') {
          out_ += "\\[";
        } else {
          out_ += c;
        }
        ++i_;
      } else if (c == '[') {
        open_class();
      } else if (c == '.') {
        out_ += "[^\\n\\r\\x{2028}\\x{2029}]";
        ++i_;
      } else {
        out_ += c;
        ++i_;
      }
    }
    if (in_class_) throw Error("unterminated character class");
    return out_;
  }

 private:
  void open_class() {
    if (js_.substr(i_, 2) == "[]") {  // matches nothing
      out_ += "(?!)";
      i_ += 2;
    } else if (js_.substr(i_, 3) == "[^]") {  // matches any code point
      out_ += "(?s:.)";
      i_ += 3;
    } else {
      in_class_ = true;
      out_ += '[';
      ++i_;
      if (i_ < js_.size() && js_[i_] == '^') {
        out_ += '^';
        ++i_;
      }
    }
  }

  // A set written out: inlined inside a class, bracketed outside.
  void set(const Ranges& ranges) {
    if (!in_class_) out_ += '[';
    out_ += class_body(ranges);
    if (!in_class_) out_ += ']';
  }

  // Reads the hex digits of \uXXXX or \u{X...} starting after "\u"; returns the code point.
  char32_t unicode_escape() {
    std::size_t k = i_ + 2;
    std::string_view digits;
    if (k < js_.size() && js_[k] == '{') {
      const std::size_t close = js_.find('}', k);
      if (close == std::string_view::npos) throw Error("unterminated \\u{...} escape");
      digits = js_.substr(k + 1, close - k - 1);
      i_ = close + 1;
    } else {
      digits = js_.substr(k, 4);
      i_ = k + 4;
      if (digits.size() < 4) throw Error("incomplete \\u escape");
    }
    if (digits.empty() || digits.size() > 6) throw Error("bad \\u escape \\u" + std::string(digits));
    char32_t value = 0;
    for (char d : digits) {
      if (!is_hex(d)) throw Error("bad \\u escape \\u" + std::string(digits));
      value = value * 16 + static_cast<char32_t>(d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10);
    }
    if (value > 0x10FFFF) throw Error("\\u escape above U+10FFFF");
    return value;
  }

  void escape() {
    if (i_ + 1 >= js_.size()) throw Error("the pattern ends with a backslash");
    const char e = js_[i_ + 1];
    switch (e) {
      case 's': set(kJsSpace); break;
      case 'S': set(complement(kJsSpace)); break;
      case 'd': set(kJsDigit); break;
      case 'D': set(complement(kJsDigit)); break;
      case 'w': set(kJsWord); break;
      case 'W': set(complement(kJsWord)); break;
      case 'b':
        out_ += in_class_ ? "\\x{8}"
                          : "(?:(?<=" + kWordClass + ")(?!" + kWordClass + ")|(?<!" + kWordClass + ")(?=" + kWordClass + "))";
        break;
      case 'B':
        if (in_class_) throw Error("\\B inside a character class");
        out_ += "(?:(?<=" + kWordClass + ")(?=" + kWordClass + ")|(?<!" + kWordClass + ")(?!" + kWordClass + "))";
        break;
      case 'v': out_ += "\\x{B}"; break;
      case '0':
        if (i_ + 2 < js_.size() && js_[i_ + 2] >= '0' && js_[i_ + 2] <= '9') throw Error("octal escape \\0" + std::string(1, js_[i_ + 2]));
        out_ += "\\x{0}";
        break;
      case 'u':
        code_point_escape();
        return;
      case 'p':
      case 'P': {
        const std::size_t close = js_.find('}', i_);
        if (i_ + 2 >= js_.size() || js_[i_ + 2] != '{' || close == std::string_view::npos) {
          throw Error("\\" + std::string(1, e) + " without a {Name}");
        }
        out_ += property(e, js_.substr(i_ + 3, close - i_ - 3));
        i_ = close + 1;
        return;
      }
      case 'k': {  // \k<name>
        const std::size_t close = js_.find('>', i_);
        if (close == std::string_view::npos) throw Error("\\k without a <name>");
        out_ += js_.substr(i_, close + 1 - i_);
        i_ = close + 1;
        return;
      }
      case 'x':
      case 'c':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        out_ += js_.substr(i_, 2);
        break;
      default:
        other_escape(e);
        return;
    }
    i_ += 2;
  }

  // \uXXXX (a surrogate pair as two of them) or \u{X...}: one code point.
  void code_point_escape() {
    char32_t c = unicode_escape();  // moves i_ past the escape
    if (c >= 0xD800 && c <= 0xDBFF && js_.substr(i_, 2) == "\\u") {
      const std::size_t save = i_;
      const char32_t low = unicode_escape();
      if (low >= 0xDC00 && low <= 0xDFFF) {
        c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
      } else {
        i_ = save;
      }
    }
    if (c >= 0xD800 && c <= 0xDFFF) throw Error("lone surrogate escape (it cannot match UTF-8 text)");
    out_ += code_point(c);
  }

  // A backreference (copied with its digits) or escaped punctuation (a literal in both dialects); any other
  // letter is no JavaScript escape.
  void other_escape(char e) {
    if (e >= '1' && e <= '9') {
      std::size_t k = i_ + 1;
      while (k < js_.size() && js_[k] >= '0' && js_[k] <= '9') ++k;
      out_ += js_.substr(i_, k - i_);
      i_ = k;
      return;
    }
    if (static_cast<unsigned char>(e) < 0x80 && !((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))) {
      out_ += js_.substr(i_, 2);
      i_ += 2;
      return;
    }
    throw Error("\\" + std::string(1, e) + " is not an escape of JavaScript regexes (u flag)");
  }

  std::string_view js_;
  std::size_t i_ = 0;
  bool in_class_ = false;
  std::string out_;
};

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

std::string transformers_js_pattern_fixes(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size());
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    // pattern.replace(/\\([#&~])/g, "$1"): every backslash directly before #, & or ~ goes, even an escaped one.
    if (pattern[i] == '\\' && i + 1 < pattern.size() &&
        (pattern[i + 1] == '#' || pattern[i + 1] == '&' || pattern[i + 1] == '~')) {
      continue;
    }
    out += pattern[i];
  }
  replace_all(out, "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))");
  // Bloom: " ?[^(\s|[.,!?…。，、।۔،])]+" → " ?[^\s.,!?…。，、।۔،]+"
  const std::string bloom = ".,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c";
  replace_all(out, " ?[^(\\s|[" + bloom + "])]+", " ?[^\\s" + bloom + "]+");
  return out;
}

std::string js_regex_to_pcre2(std::string_view js_pattern) { return Translator(js_pattern).run(); }

std::string pcre2_literal(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      if (u < 0x20 || u == 0x7F) {
        out += code_point(u);  // control characters spelled out
      } else {
        out += '\\';
        out += c;
      }
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace hashmem::tokenize
