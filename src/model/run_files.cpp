// state.json of a run directory (model/run_files.hpp).
#include "model/run_files.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "hashmem/error.hpp"

namespace hashmem::model {
namespace {

nlohmann::json to_json(const Metric& m) {
  return {m.step, m.tokens, m.train_loss, m.val_loss, m.lr, m.tokens_per_s, m.seconds};
}

// Typed reads that throw Error (without the file: parse_run_state adds it) for a value of the wrong kind, rather
// than leaving it to json's get<>(), whose conversion of a float out of an integer's range is undefined.
std::int64_t count_at(const nlohmann::json& v, const std::string& name) {
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
    throw Error("\"" + name + "\" is not a non-negative integer: " + v.dump());
  }
  return v.get<std::int64_t>();
}

double number_at(const nlohmann::json& v, const std::string& name) {
  if (!v.is_number()) throw Error("\"" + name + "\" is not a number: " + v.dump());
  return v.get<double>();
}

Metric metric_from_json(const nlohmann::json& j, const std::string& name) {
  if (!j.is_array() || j.size() != 7) throw Error("\"" + name + "\" is not a list of 7 numbers: " + j.dump());
  Metric m;
  m.step = count_at(j[0], name + "[0]");
  m.tokens = count_at(j[1], name + "[1]");
  m.train_loss = number_at(j[2], name + "[2]");
  m.val_loss = number_at(j[3], name + "[3]");
  m.lr = number_at(j[4], name + "[4]");
  m.tokens_per_s = number_at(j[5], name + "[5]");
  m.seconds = number_at(j[6], name + "[6]");
  return m;
}

}  // namespace

std::string run_state_json(const RunState& s, bool engram, const std::vector<std::size_t>& corpus_tokens) {
  nlohmann::json metrics = nlohmann::json::array();
  for (const auto& m : s.metrics) metrics.push_back(to_json(m));
  const nlohmann::ordered_json state = {{"format", "hashmem-checkpoint"},
                                        {"step", s.step},
                                        {"first_train_loss", s.first_train_loss},
                                        {"smooth_loss", s.smooth_loss},
                                        {"train_seconds", s.train_seconds},
                                        {"engram", engram},
                                        {"corpus_tokens", corpus_tokens},
                                        {"metrics", metrics}};
  return state.dump() + "\n";
}

RunState parse_run_state(std::string_view text, const std::string& path) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  // (Not j.value("format", ""): that throws json's type_error when "format" is there but not a string.)
  const auto format = j.is_object() ? j.find("format") : j.end();
  if (j.is_discarded() || !j.is_object() || format == j.end() || *format != "hashmem-checkpoint") {
    throw Error("checkpoint state '" + path + "' is damaged (not a hashmem checkpoint state)");
  }
  RunState s;
  try {
    s.step = count_at(j.at("step"), "step");
    s.first_train_loss = number_at(j.at("first_train_loss"), "first_train_loss");
    s.smooth_loss = number_at(j.at("smooth_loss"), "smooth_loss");
    s.train_seconds = number_at(j.at("train_seconds"), "train_seconds");
    if (j.contains("corpus_tokens")) {
      const auto& tokens = j.at("corpus_tokens");
      if (!tokens.is_array()) throw Error("\"corpus_tokens\" is not a list");
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        s.corpus_tokens.push_back(static_cast<std::size_t>(count_at(tokens[i], "corpus_tokens[" + std::to_string(i) + "]")));
      }
    }
    const auto& metrics = j.at("metrics");
    if (!metrics.is_array()) throw Error("\"metrics\" is not a list");
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      s.metrics.push_back(metric_from_json(metrics[i], "metrics[" + std::to_string(i) + "]"));
    }
  } catch (const nlohmann::json::exception& e) {  // a missing key
    throw Error("checkpoint state '" + path + "' is damaged: " + e.what());
  } catch (const Error& e) {
    throw Error("checkpoint state '" + path + "' is damaged: " + e.what());
  }
  return s;
}

}  // namespace hashmem::model
