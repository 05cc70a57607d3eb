// reST (the Python docs' Sphinx sources) → prose, lightly: a line-by-line state machine for blocks (what to
// drop, where paragraphs end) and a scanner for inline markup. Not a reST parser: good enough that the text a
// reader sees in the rendered docs is what remains, and code, tables and directive plumbing are gone.
#include <algorithm>
#include <array>
#include <cctype>

#include "data/text.hpp"
#include "hashmem/data.hpp"

namespace hashmem::data {
namespace {

// Directives whose body is prose: object descriptions (the signature on the directive line is dropped) …
bool is_description_directive(std::string_view name) {
  static constexpr std::array<std::string_view, 22> kNames = {
      "function", "method",  "class",   "attribute", "data",     "exception",      "decorator",   "decoratormethod",
      "classmethod", "staticmethod", "abstractmethod", "coroutinefunction", "coroutinemethod", "awaitablefunction",
      "describe", "object",  "opcode",  "pdbcommand", "cmdoption", "option",         "envvar",      "2to3fixer"};
  return name.starts_with("c:") || name.starts_with("py:") ||
         std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

// … admonitions, whose argument is already body text …
bool is_admonition_directive(std::string_view name) {
  static constexpr std::array<std::string_view, 15> kNames = {
      "note",      "warning", "important", "tip",    "hint",    "caution", "attention", "danger",
      "seealso",   "impl-detail", "epigraph", "glossary", "only", "error", "availability"};
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

// … titles (the argument is a heading paragraph of its own) …
bool is_title_directive(std::string_view name) {
  return name == "rubric" || name == "topic" || name == "sidebar" || name == "admonition" || name == "centered";
}

// … and version notes, whose first argument(s) are version numbers.
int version_arguments(std::string_view name) {
  if (name == "versionadded" || name == "versionchanged" || name == "deprecated") return 1;
  if (name == "deprecated-removed") return 2;
  return -1;
}

// A section title's under/overline or a transition: one punctuation character repeated, at least 3 times.
bool is_adornment(std::string_view s) {
  static constexpr std::string_view kChars = "=-~^\"'`*+#:._<>!$%&,;?@\\/|";
  if (s.size() < 3 || kChars.find(s[0]) == std::string_view::npos) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return c == s[0]; });
}

// The border of a simple table: runs of '=' separated by spaces ("=====  =====").
bool is_simple_table_rule(std::string_view s) {
  return s.size() >= 3 && s[0] == '=' && s.find(' ') != std::string_view::npos &&
         std::all_of(s.begin(), s.end(), [](char c) { return c == '=' || c == ' '; });
}

// A grid table's border ("+----+---+") or row ("| a  | b |").
bool is_grid_table_line(std::string_view s) {
  if (s.size() >= 2 && s[0] == '+' && (s[1] == '-' || s[1] == '=')) return true;
  return s.size() >= 2 && s[0] == '|' && s.back() == '|';
}

// A directive option line right below the directive (":synopsis: …", ":noindex:"), not a role (":attr:`x`").
bool is_option_line(std::string_view s) {
  if (s.size() < 3 || s[0] != ':') return false;
  const std::size_t end = s.find(':', 1);
  if (end == std::string_view::npos || end == 1 || (end + 1 < s.size() && s[end + 1] != ' ')) return false;
  return std::all_of(s.begin() + 1, s.begin() + static_cast<std::ptrdiff_t>(end),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of a list marker at the start of `s` ("* ", "- ", "+ ", "#. ", "12. ", "3) ", "(4) "), or 0.
std::size_t list_marker_length(std::string_view s) {
  if (s.size() >= 2 && (s[0] == '*' || s[0] == '-' || s[0] == '+') && s[1] == ' ') return 2;
  std::size_t i = 0;
  const bool parenthesised = !s.empty() && s[0] == '(';
  if (parenthesised) ++i;
  const std::size_t digits = i;
  if (i < s.size() && s[i] == '#') {
    ++i;
  } else {
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i == digits || i - digits > 3 || i + 1 >= s.size()) return 0;
  if (parenthesised ? s[i] != ')' : (s[i] != '.' && s[i] != ')')) return 0;
  return s[i + 1] == ' ' ? i + 2 : 0;
}

bool is_word_char(unsigned char c) { return std::isalnum(c) || c >= 0x80; }

// The text a role or hyperlink shows: "title <target>" → "title"; "~a.b.c" → "c"; "!x" → "x".
std::string_view displayed_text(std::string_view inner, bool role) {
  if (inner.size() > 2 && inner.back() == '>') {
    const std::size_t open = inner.rfind(" <");
    if (open != std::string_view::npos && open > 0) return trim(inner.substr(0, open));
  }
  if (role && !inner.empty() && inner[0] == '!') inner.remove_prefix(1);
  if (role && !inner.empty() && inner[0] == '~') {
    inner.remove_prefix(1);
    const std::size_t dot = inner.rfind('.');
    if (dot != std::string_view::npos && dot + 1 < inner.size()) inner.remove_prefix(dot + 1);
  }
  return inner;
}

// Inline markup of one paragraph (its lines already joined by spaces).
std::string clean_inline(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  std::size_t emphasis_end = std::string_view::npos, emphasis_length = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (i == emphasis_end) {  // the closing stars of an emphasis opened earlier
      i += emphasis_length;
      emphasis_end = std::string_view::npos;
      continue;
    }
    if (c == '`' && s.substr(i, 2) == "``") {  // ``literal`` → literal, verbatim
      const std::size_t close = s.find("``", i + 2);
      if (close != std::string_view::npos) {
        out += s.substr(i + 2, close - i - 2);
        i = close + 2;
        continue;
      }
    }
    if (c == ':' && (i == 0 || !is_word_char(static_cast<unsigned char>(s[i - 1])))) {  // :role:`text`
      std::size_t j = i + 1;
      while (j < s.size() && (is_word_char(static_cast<unsigned char>(s[j])) || s[j] == ':' || s[j] == '-' ||
                              s[j] == '_' || s[j] == '.' || s[j] == '+')) {
        ++j;
      }
      if (j > i + 2 && s[j - 1] == ':' && j < s.size() && s[j] == '`') {
        const std::size_t close = s.find('`', j + 1);
        if (close != std::string_view::npos) {
          const std::string_view role = s.substr(i + 1, j - i - 2);
          // As Sphinx shows them: :pep:`8` → PEP 8, :rfc:`822` → RFC 822, :issue:`9757` → bpo-9757.
          if (role == "pep") out += "PEP ";
          if (role == "rfc") out += "RFC ";
          if (role == "issue") out += "bpo-";
          if (role == "gh") out += "gh-";
          out += displayed_text(s.substr(j + 1, close - j - 1), true);
          i = close + 1;
          continue;
        }
      }
    }
    if (c == '`') {  // `text`, `text <url>`_, `text`__
      const std::size_t close = s.find('`', i + 1);
      if (close != std::string_view::npos && close > i + 1) {
        out += displayed_text(s.substr(i + 1, close - i - 1), false);
        i = close + 1;
        while (i < s.size() && s[i] == '_') ++i;
        continue;
      }
    }
    if (c == '[') {  // footnote and citation references [1]_ [#]_ [#name]_
      const std::size_t close = s.find(']', i + 1);
      if (close != std::string_view::npos && close + 1 < s.size() && s[close + 1] == '_' &&
          s.substr(i, close - i).find(' ') == std::string_view::npos) {
        while (!out.empty() && out.back() == ' ') out.pop_back();
        i = close + 2;
        continue;
      }
    }
    if (c == '*') {  // *emphasis* and **strong**: drop a matching pair of star runs at word boundaries
      std::size_t run = 1;
      while (i + run < s.size() && s[i + run] == '*') ++run;
      const bool opens = (i == 0 || is_space(s[i - 1]) || std::string_view("([{'\"/-").find(s[i - 1]) !=
                                                                 std::string_view::npos) &&
                         i + run < s.size() && !is_space(s[i + run]);
      if (run <= 2 && opens && emphasis_end == std::string_view::npos) {
        for (std::size_t k = s.find(std::string(run, '*'), i + run); k != std::string_view::npos;
             k = s.find(std::string(run, '*'), k + 1)) {
          const bool closes = !is_space(s[k - 1]) && (k + run == s.size() || s[k + run] != '*') &&
                              (k + run == s.size() || !is_word_char(static_cast<unsigned char>(s[k + run])));
          if (closes && k > i + run) {
            emphasis_end = k;
            emphasis_length = run;
            break;
          }
        }
        if (emphasis_end != std::string_view::npos) {
          i += run;
          continue;
        }
      }
      out.append(s.substr(i, run));
      i += run;
      continue;
    }
    if (c == '\\' && i + 1 < s.size()) {  // escapes: "\ " joins, "\x" is x
      if (!is_space(s[i + 1])) out += s[i + 1];
      i += 2;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

// Line-by-line state of the block parser.
class RestCleaner {
 public:
  std::string run(std::string_view text) {
    std::size_t pos = 0;
    while (pos <= text.size()) {
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string_view::npos) eol = text.size();
      line(text.substr(pos, eol - pos));
      pos = eol + 1;
    }
    end_paragraph();
    return std::move(out_);
  }

 private:
  enum class Mode {
    normal,
    skip_block,        // an indented block to drop: blank lines and lines indented more than block_indent_
    skip_until_blank,  // a doctest block
    simple_table,      // inside a simple table, until a border followed by a blank line
    directive_header,  // right after a kept directive: drop options (and signature continuations)
  };

  void line(std::string_view raw) {
    const std::string_view s = trim(raw);
    const int indent = indentation(raw);
    if (s.empty()) {
      end_paragraph();
      if (mode_ == Mode::skip_until_blank || mode_ == Mode::directive_header) mode_ = Mode::normal;
      if (mode_ == Mode::simple_table && after_table_rule_) mode_ = Mode::normal;
      return;
    }
    switch (mode_) {
      case Mode::skip_block:
        if (indent > block_indent_) return;
        mode_ = Mode::normal;
        break;
      case Mode::skip_until_blank:
        return;
      case Mode::simple_table:
        after_table_rule_ = is_simple_table_rule(s);
        return;
      case Mode::directive_header:
        if (indent > block_indent_ && (drop_header_lines_ || is_option_line(s))) return;
        mode_ = Mode::normal;
        break;
      case Mode::normal:
        break;
    }
    std::string_view content = s;
    int column = indent;  // where `content` starts: inside a list item, its text's column
    // A list item starts a paragraph: after a blank line, or right after another item at the same indent (a
    // "- x" inside a running paragraph is text).
    const std::size_t marker =
        paragraph_.empty() || list_item_indent_ == indent ? list_marker_length(content) : 0;
    if (marker) {
      end_paragraph();
      content = trim(content.substr(marker));
      column = indent + static_cast<int>(content.data() - s.data());
      list_item_indent_ = indent;
    }
    if (content == ".." || content.starts_with(".. ")) {
      end_paragraph();
      directive(content.substr(2), column);
      return;
    }
    if (content.starts_with(">>>")) {
      end_paragraph();
      mode_ = Mode::skip_until_blank;
      return;
    }
    if (is_adornment(content) || is_grid_table_line(content)) {
      end_paragraph();
      return;
    }
    if (is_simple_table_rule(content)) {
      end_paragraph();
      mode_ = Mode::simple_table;
      after_table_rule_ = true;
      return;
    }
    add(content, column);
  }

  // Adds a line's text to the paragraph; a trailing "::" announces a literal block, which is dropped.
  void add(std::string_view content, int indent) {
    if (content.empty()) return;
    if (paragraph_.empty()) paragraph_indent_ = indent;
    if (content.ends_with("::")) {
      content.remove_suffix(2);
      paragraph_ += ' ';
      paragraph_ += content;
      // "Example::" reads "Example:"; "… below ::" and a lone "::" just end.
      if (!content.empty() && !is_space(content.back())) paragraph_ += ':';
      end_paragraph();
      mode_ = Mode::skip_block;
      block_indent_ = std::min(indent, paragraph_indent_);
      return;
    }
    paragraph_ += ' ';
    paragraph_ += content;
  }

  // `rest` is what follows ".." on the line.
  void directive(std::string_view rest, int indent) {
    rest = trim(rest);
    const std::size_t colons = rest.find("::");
    std::string_view name = colons == std::string_view::npos ? std::string_view{} : trim(rest.substr(0, colons));
    const bool named = !name.empty() && name.find(' ') == std::string_view::npos && name[0] != '_' && name[0] != '|';
    std::string_view argument = named ? trim(rest.substr(colons + 2)) : std::string_view{};
    block_indent_ = indent;
    mode_ = Mode::directive_header;
    drop_header_lines_ = false;
    if (named && is_description_directive(name)) {
      drop_header_lines_ = true;  // signature continuation lines
      return;
    }
    if (named && is_admonition_directive(name)) {
      if (name != "only" && name != "availability") add(argument, indent);
      return;
    }
    if (named && is_title_directive(name)) {
      add(argument, indent);
      end_paragraph();
      return;
    }
    if (const int versions = named ? version_arguments(name) : -1; versions >= 0) {
      for (int k = 0; k < versions && !argument.empty(); ++k) {
        const std::size_t space = argument.find(' ');
        argument = space == std::string_view::npos ? std::string_view{} : trim(argument.substr(space));
      }
      add(argument, indent);
      return;
    }
    // Comments, targets, substitutions and every other directive (code, index, toctree, module, tables, …):
    // drop the line and its indented body.
    mode_ = Mode::skip_block;
  }

  void end_paragraph() {
    if (!paragraph_.empty()) append_paragraph(out_, clean_inline(paragraph_));
    paragraph_.clear();
    list_item_indent_ = -1;
  }

  std::string out_;
  std::string paragraph_;
  int paragraph_indent_ = 0;
  int list_item_indent_ = -1;  // indent of the list marker that opened the current paragraph, or -1
  Mode mode_ = Mode::normal;
  int block_indent_ = 0;
  bool drop_header_lines_ = false;
  bool after_table_rule_ = false;
};

}  // namespace

std::string clean_rest(std::string_view rest) { return RestCleaner().run(rest); }

}  // namespace hashmem::data
