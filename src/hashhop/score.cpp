// HashHop scoring. The original ships no scorer; SPEC §1 fixes the rule: per query, exact match of the text
// before the closing quote, reported per (context length, hops, CoT). Predictions are streamed: only the
// dataset's targets are held, indexed by a FlatIndex on (sample, query).
#include <map>
#include <tuple>

#include "common/flat_index.hpp"
#include "hashhop/jsonl.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"

namespace hashmem::hashhop {

std::string_view answer_text(std::string_view raw) {
  std::size_t begin = raw.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  raw.remove_prefix(begin);
  if (!raw.empty() && raw.front() == '\'') raw.remove_prefix(1);
  std::size_t end = raw.find_first_of("'\n\r");
  if (end != std::string_view::npos) raw = raw.substr(0, end);
  std::size_t last = raw.find_last_not_of(" \t");
  return last == std::string_view::npos ? std::string_view() : raw.substr(0, last + 1);
}

namespace {

template <class Fn>
void for_each_completion_line(std::string_view text, Fn fn) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    std::size_t eq = line.find(" = ");
    if (eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq);
    std::size_t kb = key.find_first_not_of(" \t");
    if (kb == std::string_view::npos) continue;
    fn(key.substr(kb), answer_text(line.substr(eq + 3)));
  }
}

}  // namespace

std::vector<Prediction> parse_completion(std::int64_t sample, std::string_view text) {
  std::vector<Prediction> out;
  for_each_completion_line(text, [&](std::string_view key, std::string_view answer) {
    out.push_back(Prediction{sample, std::string(key), std::string(answer)});
  });
  return out;
}

void for_each_prediction(const std::string& path,
                         const std::function<void(std::int64_t, std::string_view, std::string_view)>& fn) {
  using simdjson::ondemand::object;
  bool any = false;
  for_each_json_line(path, "predictions", [&](std::int64_t, simdjson::ondemand::document& doc) {
    object obj;
    check_json(doc.get_object().get(obj), "a prediction must be a JSON object");
    std::int64_t sample = -1;
    std::string_view query, answer, completion;
    bool has_query = false, has_answer = false, has_completion = false;
    for (auto field : obj) {
      std::string_view key;
      check_json(field.unescaped_key().get(key), "not valid JSON");
      if (key == "sample") {
        if (field.value().get_int64().get(sample) || sample < 0) {
          throw Error("\"sample\" must be a non-negative integer");
        }
      } else if (key == "query") {
        if (field.value().get_string().get(query)) throw Error("\"query\" must be a string");
        has_query = true;
      } else if (key == "answer") {
        if (field.value().get_string().get(answer)) throw Error("\"answer\" must be a string");
        has_answer = true;
      } else if (key == "completion") {
        if (field.value().get_string().get(completion)) throw Error("\"completion\" must be a string");
        has_completion = true;
      }
    }
    if (sample < 0) throw Error("\"sample\" must be a non-negative integer");
    any = true;
    if (has_completion) {
      for_each_completion_line(completion, [&](std::string_view k, std::string_view a) { fn(sample, k, a); });
    } else if (has_query && has_answer) {
      fn(sample, query, answer_text(answer));
    } else {
      throw Error("needs \"query\" and \"answer\" strings (or a \"completion\" string)");
    }
  });
  if (!any) throw Error("predictions '" + path + "' hold no predictions");
}

std::vector<Prediction> read_predictions(const std::string& path) {
  std::vector<Prediction> out;
  for_each_prediction(path, [&](std::int64_t sample, std::string_view query, std::string_view answer) {
    out.push_back(Prediction{sample, std::string(query), std::string(answer)});
  });
  return out;
}

struct Scorer::State {
  const std::vector<DatasetSample>& dataset;
  std::vector<std::uint32_t> sample_of;  // per scored query
  std::vector<std::uint32_t> target_of;  // its index in the sample's targets
  std::vector<std::uint8_t> outcome;     // 0 unanswered, 1 wrong, 2 right
  FlatIndex index;
  std::int64_t unknown = 0, duplicate = 0;

  State(const std::vector<DatasetSample>& d, std::uint64_t expected) : dataset(d), index(expected) {}

  static std::uint64_t fingerprint(std::uint64_t sample, std::string_view query) {
    return text_fingerprint(query) ^ (sample * 0xD6E8FEB86659FD93ull);
  }
  std::uint32_t find(std::uint64_t sample, std::string_view query) const {
    return index.find(fingerprint(sample, query), [&](std::uint32_t q) {
      return sample_of[q] == sample && dataset[sample].targets.key(target_of[q]) == query;
    });
  }
};

Scorer::Scorer(const std::vector<DatasetSample>& dataset, bool all_targets) {
  std::uint64_t total = 0;
  for (const DatasetSample& s : dataset) total += s.targets.size();
  state_ = std::make_unique<State>(dataset, all_targets ? total : 0);
  for (std::size_t s = 0; s < dataset.size(); ++s) {
    const TargetList& targets = dataset[s].targets;
    const std::size_t count =
        all_targets ? targets.size()
                    : std::min(targets.size(), static_cast<std::size_t>(dataset[s].params.num_queries));
    for (std::size_t t = 0; t < count; ++t) {
      const std::uint32_t q = static_cast<std::uint32_t>(state_->sample_of.size());
      const std::uint32_t existing = state_->index.find_or_insert(
          State::fingerprint(s, targets.key(t)), q,
          [&](std::uint32_t other) { return state_->sample_of[other] == s && targets.key(state_->target_of[other]) == targets.key(t); });
      if (existing != FlatIndex::kNone) continue;  // a repeated target key: the first one is scored
      state_->sample_of.push_back(static_cast<std::uint32_t>(s));
      state_->target_of.push_back(static_cast<std::uint32_t>(t));
    }
  }
  state_->outcome.assign(state_->sample_of.size(), 0);
}

Scorer::~Scorer() = default;

void Scorer::add(std::int64_t sample, std::string_view query, std::string_view answer) {
  State& st = *state_;
  if (sample < 0 || static_cast<std::size_t>(sample) >= st.dataset.size()) {
    ++st.unknown;
    return;
  }
  const std::uint32_t q = st.find(static_cast<std::uint64_t>(sample), query);
  if (q == FlatIndex::kNone) {
    ++st.unknown;
    return;
  }
  if (st.outcome[q] != 0) {
    ++st.duplicate;
    return;
  }
  st.outcome[q] = answer == st.dataset[sample].targets.value(st.target_of[q]) ? 2 : 1;
}

ScoreReport Scorer::report() const {
  const State& st = *state_;
  std::map<std::tuple<std::int64_t, std::int64_t, bool>, ScoreRow> rows;
  auto row_of = [&](std::size_t s) -> ScoreRow& {
    const Params& p = st.dataset[s].params;
    ScoreRow& row = rows[{p.n_chars, p.hops, p.cot}];
    row.chars = p.n_chars;
    row.hops = p.hops;
    row.cot = p.cot;
    return row;
  };
  for (std::size_t s = 0; s < st.dataset.size(); ++s) row_of(s).samples += 1;
  for (std::size_t q = 0; q < st.sample_of.size(); ++q) {
    ScoreRow& row = row_of(st.sample_of[q]);
    row.queries += 1;
    row.answered += st.outcome[q] != 0;
    row.correct += st.outcome[q] == 2;
  }
  ScoreReport report;
  for (auto& [key, row] : rows) {
    report.queries += row.queries;
    report.correct += row.correct;
    report.rows.push_back(row);
  }
  report.unknown_predictions = st.unknown;
  report.duplicate_predictions = st.duplicate;
  return report;
}

ScoreReport score(const std::vector<DatasetSample>& dataset, const std::vector<Prediction>& predictions,
                  bool all_targets) {
  Scorer scorer(dataset, all_targets);
  for (const Prediction& p : predictions) scorer.add(p.sample, p.query, p.answer);
  return scorer.report();
}

ScoreReport score_file(const std::vector<DatasetSample>& dataset, const std::string& predictions_path,
                       bool all_targets) {
  Scorer scorer(dataset, all_targets);
  for_each_prediction(predictions_path, [&](std::int64_t sample, std::string_view query, std::string_view answer) {
    scorer.add(sample, query, answer);
  });
  return scorer.report();
}

}  // namespace hashmem::hashhop
