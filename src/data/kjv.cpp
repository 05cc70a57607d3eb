// The King James Bible (Debian bible-kjv): the `bible` program decodes its compressed data file; we ask it for
// every verse in one call (`-f` turns pretty-printing off: one "Ge1:1 text" line per verse) and group by book.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/text.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"

extern char** environ;

namespace hashmem::data {
namespace {

// The book abbreviations `bible` prints, with the document name of each book, in canonical order.
constexpr std::pair<std::string_view, std::string_view> kBooks[] = {
    {"Ge", "Genesis"},       {"Exo", "Exodus"},         {"Lev", "Leviticus"},     {"Num", "Numbers"},
    {"Deu", "Deuteronomy"},  {"Josh", "Joshua"},        {"Jdgs", "Judges"},       {"Ruth", "Ruth"},
    {"1Sm", "1Samuel"},      {"2Sm", "2Samuel"},        {"1Ki", "1Kings"},        {"2Ki", "2Kings"},
    {"1Chr", "1Chronicles"}, {"2Chr", "2Chronicles"},   {"Ezra", "Ezra"},         {"Neh", "Nehemiah"},
    {"Est", "Esther"},       {"Job", "Job"},            {"Psa", "Psalms"},        {"Prv", "Proverbs"},
    {"Eccl", "Ecclesiastes"}, {"SSol", "SongOfSolomon"}, {"Isa", "Isaiah"},       {"Jer", "Jeremiah"},
    {"Lam", "Lamentations"}, {"Eze", "Ezekiel"},        {"Dan", "Daniel"},        {"Hos", "Hosea"},
    {"Joel", "Joel"},        {"Amos", "Amos"},          {"Obad", "Obadiah"},      {"Jonah", "Jonah"},
    {"Mic", "Micah"},        {"Nahum", "Nahum"},        {"Hab", "Habakkuk"},      {"Zep", "Zephaniah"},
    {"Hag", "Haggai"},       {"Zec", "Zechariah"},      {"Mal", "Malachi"},       {"Mat", "Matthew"},
    {"Mark", "Mark"},        {"Luke", "Luke"},          {"John", "John"},         {"Acts", "Acts"},
    {"Rom", "Romans"},       {"1Cor", "1Corinthians"},  {"2Cor", "2Corinthians"}, {"Gal", "Galatians"},
    {"Eph", "Ephesians"},    {"Phi", "Philippians"},    {"Col", "Colossians"},    {"1Th", "1Thessalonians"},
    {"2Th", "2Thessalonians"}, {"1Tim", "1Timothy"},    {"2Tim", "2Timothy"},     {"Titus", "Titus"},
    {"Phmn", "Philemon"},    {"Heb", "Hebrews"},        {"Jas", "James"},         {"1Pet", "1Peter"},
    {"2Pet", "2Peter"},      {"1Jn", "1John"},          {"2Jn", "2John"},         {"3Jn", "3John"},
    {"Jude", "Jude"},        {"Rev", "Revelation"},
};

std::string_view book_name(std::string_view abbreviation) {
  for (const auto& [abbr, name] : kBooks) {
    if (abbr == abbreviation) return name;
  }
  return {};
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// Runs argv (argv[0] searched in PATH) with stdin from /dev/null and returns its stdout; stderr passes through.
std::string run_and_capture(const std::vector<std::string>& argv, const std::string& package) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw Error(std::string("cannot create a pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    throw Error("cannot run '" + argv[0] + "': " + std::strerror(rc) + "; it comes from the " + package +
                " package");
  }
  std::string output;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
    throw Error("'" + command + "' failed (" +
                (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                   : "signal " + std::to_string(WTERMSIG(status))) +
                "): " + std::string(trim(output.substr(0, 200))));
  }
  return output;
}

}  // namespace

std::vector<Document> kjv_books(std::string_view verse_listing) {
  std::vector<Document> books;
  std::string_view current_abbreviation;
  std::size_t pos = 0, line_number = 0;
  while (pos < verse_listing.size()) {
    std::size_t eol = verse_listing.find('\n', pos);
    if (eol == std::string_view::npos) eol = verse_listing.size();
    const std::string_view line = verse_listing.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_number;
    if (trim(line).empty()) continue;
    // "<abbreviation><chapter>:<verse> <text>", the abbreviation possibly starting with a digit (1Sm).
    std::size_t i = 0;
    if (i < line.size() && is_digit(line[i])) ++i;
    while (i < line.size() && is_letter(line[i])) ++i;
    const std::string_view abbreviation = line.substr(0, i);
    const std::size_t chapter_start = i;
    while (i < line.size() && is_digit(line[i])) ++i;
    bool ok = i > chapter_start && i < line.size() && line[i] == ':';
    const std::size_t verse_start = ++i;
    while (ok && i < line.size() && is_digit(line[i])) ++i;
    ok = ok && i > verse_start && (i == line.size() || line[i] == ' ');
    const std::string_view name = ok ? book_name(abbreviation) : std::string_view{};
    if (name.empty()) {
      throw Error("KJV verse listing, line " + std::to_string(line_number) + ": expected '<book><chapter>:<verse> "
                  "text' with a known book, got '" + std::string(line.substr(0, 80)) + "'");
    }
    if (abbreviation != current_abbreviation) {
      const std::string document_name = "kjv/" + std::string(name);
      for (const auto& b : books) {
        if (b.name == document_name) {
          throw Error("KJV verse listing, line " + std::to_string(line_number) + ": book " + std::string(name) +
                      " appears twice");
        }
      }
      books.push_back({document_name, {}});
      current_abbreviation = abbreviation;
    }
    append_paragraph(books.back().text, line.substr(i));
  }
  std::erase_if(books, [](const Document& d) { return d.text.empty(); });
  return books;
}

std::vector<Document> read_kjv(const std::string& bible_program, const std::string& bible_data) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(bible_data, ec)) {
    throw Error("KJV text '" + bible_data + "' not found; it comes from the Debian package bible-kjv-text "
                "(apt-get install bible-kjv)");
  }
  const fs::path data(bible_data);
  // -p: the directory to search (only that one; by default `bible` looks in the working directory first).
  const std::string listing = run_and_capture(
      {bible_program, "-f", "-p", data.parent_path().empty() ? "." : data.parent_path().string(), "-d",
       data.filename().string(), "Gen1:1-Rev22:21"},
      source_package("kjv"));
  std::vector<Document> books = kjv_books(normalize_text(listing));
  if (books.empty()) throw Error("'" + bible_program + "' printed no verse from '" + bible_data + "'");
  return books;
}

}  // namespace hashmem::data
