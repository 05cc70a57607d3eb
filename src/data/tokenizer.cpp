// The corpus tokenizer: SentencePiece BPE training (libsentencepiece_train), encoding documents, and the
// token-id file format (data.hpp).
#include <atomic>
#include <bit>
#include <cstring>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sstream>
#include <unordered_map>

#include "common/parallel.hpp"
#include "common/sentencepiece_check.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::data {
namespace {

static_assert(std::endian::native == std::endian::little, "token-id files are written in host byte order");

// SentencePiece's own generator is seeded with this before every training (it is only used for sampling,
// which the flags turn off, but a fixed seed keeps that true for any future flag).
constexpr unsigned kTrainerSeed = 20240601;

// Feeds the trainer the paragraphs (non-empty lines) of a corpus, in order, without copying the corpus.
class ParagraphIterator : public sentencepiece::SentenceIterator {
 public:
  explicit ParagraphIterator(std::string_view corpus) : corpus_(corpus) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (pos_ < corpus_.size()) {
      std::size_t eol = corpus_.find('\n', pos_);
      if (eol == std::string_view::npos) eol = corpus_.size();
      const std::string_view line = corpus_.substr(pos_, eol - pos_);
      pos_ = eol + 1;
      if (!line.empty()) {
        value_.assign(line);
        return;
      }
    }
    done_ = true;
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::string_view corpus_;
  std::size_t pos_ = 0;
  std::string value_;
  bool done_ = false;
};

void load_model(sentencepiece::SentencePieceProcessor& processor, std::string_view model) {
  check_sentencepiece_model(model, "cannot load the SentencePiece model");
  sentencepiece::util::Status status;
  try {
    status = processor.LoadFromSerializedProto(model);
  } catch (const std::exception& e) {
    // libsentencepiece throws, rather than returning a status, on some malformed models (darts_clone's trie
    // builder on a piece that starts with a NUL byte).
    throw Error(std::string("cannot load the SentencePiece model: ") + e.what());
  }
  if (!status.ok()) throw Error("cannot load the SentencePiece model: " + status.ToString());
}

}  // namespace

std::string tokenizer_trainer_flags(const TokenizerOptions& options) {
  if (options.vocab_size < 300 || options.vocab_size > 1000000) {
    throw Error("vocab size must be in [300, 1000000] (it includes 256 byte pieces), got " +
                std::to_string(options.vocab_size));
  }
  if (options.threads < 1) throw Error("tokenizer threads must be >= 1, got " + std::to_string(options.threads));
  // input_sentence_size=0 + no shuffling: every paragraph is used, in corpus order (no random sampling).
  // max_sentence_length: paragraphs, not sentences, are the trainer's "sentences"; none may be skipped.
  return "--model_type=bpe --vocab_size=" + std::to_string(options.vocab_size) +
         " --character_coverage=0.9995 --byte_fallback=true --split_digits=true"
         " --input_sentence_size=0 --shuffle_input_sentence=false --max_sentence_length=1048576"
         " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=" +
         std::to_string(options.threads);
}

std::string train_tokenizer(std::string_view corpus, const TokenizerOptions& options) {
  const std::string flags = tokenizer_trainer_flags(options);
  if (corpus.find_first_not_of('\n') == std::string_view::npos) throw Error("cannot train a tokenizer on no text");
  // The key=value form (not the flag string): that overload applies minloglevel before logging anything, and
  // SentencePiece's progress chatter (INFO) would bury ours; warnings still show.
  std::unordered_map<std::string, std::string> kwargs{{"minloglevel", "1"}};
  std::istringstream words(flags);
  for (std::string word; words >> word;) {
    const std::size_t eq = word.find('=');
    kwargs[word.substr(2, eq - 2)] = word.substr(eq + 1);
  }
  sentencepiece::SetRandomGeneratorSeed(kTrainerSeed);
  ParagraphIterator paragraphs(corpus);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &paragraphs, &model);
  if (!status.ok()) throw Error("SentencePiece training failed (" + flags + "): " + status.ToString());
  if (model.empty()) throw Error("SentencePiece training returned an empty model");
  return model;
}

std::string tokenizer_vocab(std::string_view model) {
  sentencepiece::SentencePieceProcessor processor;
  load_model(processor, model);
  std::ostringstream out;
  for (int id = 0; id < processor.GetPieceSize(); ++id) {
    out << processor.IdToPiece(id) << '\t' << processor.GetScore(id) << '\n';
  }
  return out.str();
}

std::vector<std::int32_t> encode_text(std::string_view model, std::string_view text) {
  sentencepiece::SentencePieceProcessor processor;
  load_model(processor, model);
  std::vector<std::int32_t> out;
  std::vector<int> ids;
  const std::string clean = normalize_text(text);  // as the corpus was cleaned
  std::size_t pos = 0;
  while (pos < clean.size()) {  // one paragraph a line, encoded one after another as documents were
    std::size_t eol = clean.find('\n', pos);
    if (eol == std::string::npos) eol = clean.size();
    if (eol > pos) {
      const auto status = processor.Encode(std::string_view(clean).substr(pos, eol - pos), &ids);
      if (!status.ok()) throw Error("SentencePiece encoding failed: " + status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    pos = eol + 1;
  }
  return out;
}

std::string decode_ids(std::string_view model, const std::vector<std::int32_t>& ids) {
  sentencepiece::SentencePieceProcessor processor;
  load_model(processor, model);
  for (std::int32_t id : ids) {
    if (id < 0 || id >= processor.GetPieceSize()) throw Error("token id " + std::to_string(id) + " is outside the tokenizer");
  }
  std::string text;
  const auto status = processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw Error("SentencePiece decoding failed: " + status.ToString());
  return text;
}

std::string decode_continuation(std::string_view model, const std::vector<std::int32_t>& context,
                                const std::vector<std::int32_t>& ids) {
  if (ids.empty()) return {};
  std::vector<std::int32_t> all = context;
  all.insert(all.end(), ids.begin(), ids.end());
  const std::string whole = decode_ids(model, all), head = decode_ids(model, context);
  if (whole.compare(0, head.size(), head) == 0) return whole.substr(head.size());
  // Decoding is piece by piece, so the context's text is a prefix of the whole; should a model ever break that,
  // the ids' own text with the word boundary of their first piece restored.
  sentencepiece::SentencePieceProcessor processor;
  load_model(processor, model);
  const std::string tail = decode_ids(model, ids);
  return processor.IdToPiece(ids.front()).rfind("\xe2\x96\x81", 0) == 0 ? " " + tail : tail;
}

TokenIds tokenize_documents(std::string_view model, std::string_view corpus, int threads, Progress* progress) {
  sentencepiece::SentencePieceProcessor processor;
  load_model(processor, model);
  const std::vector<std::string_view> documents = split_documents(corpus);
  std::vector<std::vector<std::int32_t>> per_document(documents.size());
  // Documents differ in size by 1000x (a KJV book vs a short page): threads take the next one as they go.
  std::atomic<std::size_t> next{0};
  parallel_for(resolve_threads(threads), threads, [&](std::int64_t part, std::int64_t) {
    std::vector<int> ids;
    for (std::size_t d = next++; d < documents.size(); d = next++) {
      if (progress && part == 0) progress->update(d);  // the calling thread (part 0) owns the progress line
      const std::string_view text = documents[d];
      auto& out = per_document[d];
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        const auto status = processor.Encode(text.substr(pos, eol - pos), &ids);
        if (!status.ok()) throw Error("SentencePiece encoding failed: " + status.ToString());
        out.insert(out.end(), ids.begin(), ids.end());
        pos = eol + 1;
      }
    }
  });
  TokenIds result;
  result.vocab_size = static_cast<std::uint64_t>(processor.GetPieceSize());
  result.document_starts.push_back(0);
  std::size_t total = 0;
  for (const auto& ids : per_document) total += ids.size();
  result.ids.reserve(total);
  for (auto& ids : per_document) {
    result.ids.insert(result.ids.end(), ids.begin(), ids.end());
    result.document_starts.push_back(result.ids.size());
    std::vector<std::int32_t>().swap(ids);
  }
  return result;
}

}  // namespace hashmem::data
