// Reading HashHop datasets (JSONL, one sample per line) with simdjson On-Demand: a 300 MB prompt is
// unescaped once into the parser's buffer (or skipped), and millions of targets land in one TargetList.
#include "hashhop/jsonl.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"

namespace hashmem::hashhop {
namespace {

using simdjson::ondemand::document;
using simdjson::ondemand::object;
using simdjson::ondemand::value;

void read_params(value v, Params& params) {
  object obj;
  check_json(v.get_object().get(obj), "\"params\" must be an object");
  unsigned seen = 0;
  for (auto field : obj) {
    std::string_view key;
    check_json(field.unescaped_key().get(key), "not valid JSON in params");
    value item;
    check_json(field.value().get(item), "not valid JSON in params");
    const std::string name(key);
    auto integer = [&](std::int64_t& out, unsigned bit) {
      if (item.get_int64().get(out)) throw Error("params." + name + " must be an integer");
      seen |= bit;
    };
    if (key == "seed") {
      if (item.get_uint64().get(params.seed)) throw Error("params.seed must be a non-negative integer");
      seen |= 1;
    } else if (key == "chars") {
      integer(params.n_chars, 2);
    } else if (key == "hops") {
      integer(params.hops, 4);
    } else if (key == "hash_length") {
      integer(params.hash_length, 8);
    } else if (key == "queries") {
      integer(params.num_queries, 16);
    } else if (key == "cot") {
      if (item.get_bool().get(params.cot)) throw Error("params.cot must be true or false");
      seen |= 32;
    }
  }
  static const char* kNames[] = {"seed", "chars", "hops", "hash_length", "queries", "cot"};
  for (int i = 0; i < 6; ++i) {
    if (!(seen & (1u << i))) throw Error(std::string("params lack \"") + kNames[i] + "\"");
  }
}

void read_targets(value v, TargetList& targets) {
  object obj;
  check_json(v.get_object().get(obj), "\"targets\" must be an object");
  for (auto field : obj) {
    std::string_view key, text;
    check_json(field.unescaped_key().get(key), "not valid JSON in targets");
    if (field.value().get_string().get(text)) throw Error("target \"" + std::string(key) + "\" must map to a string");
    targets.add(key, text);
  }
}

}  // namespace

void TargetList::add(std::string_view key, std::string_view value) {
  text_.append(key);
  ends_.push_back(text_.size());
  text_.append(value);
  ends_.push_back(text_.size());
}

void for_each_sample(const std::string& path, bool with_prompt,
                     const std::function<void(std::int64_t, DatasetSample&)>& fn) {
  std::int64_t index = 0;
  for_each_json_line(path, "dataset", [&](std::int64_t, document& doc) {
    object obj;
    check_json(doc.get_object().get(obj), "a sample must be a JSON object");
    DatasetSample sample;
    bool seen_params = false, seen_targets = false, seen_prompt = false;
    for (auto field : obj) {
      std::string_view key;
      check_json(field.unescaped_key().get(key), "not valid JSON");
      value v;
      check_json(field.value().get(v), "not valid JSON");
      if (key == "params") {
        read_params(v, sample.params);
        seen_params = true;
      } else if (key == "targets") {
        read_targets(v, sample.targets);
        seen_targets = true;
      } else if (key == "prompt") {
        seen_prompt = true;
        if (with_prompt && v.get_string().get(sample.prompt)) throw Error("\"prompt\" must be a string");
      }
    }
    if (!seen_params) throw Error("the sample has no \"params\" object");
    if (!seen_targets) throw Error("the sample has no \"targets\" object");
    if (with_prompt && !seen_prompt) throw Error("the sample has no \"prompt\" string");
    validate(sample.params);
    fn(index++, sample);
  });
  if (index == 0) throw Error("dataset '" + path + "' holds no samples");
}

std::vector<DatasetSample> read_dataset(const std::string& path) {
  std::vector<DatasetSample> samples;
  for_each_sample(path, false, [&](std::int64_t, DatasetSample& s) { samples.push_back(std::move(s)); });
  return samples;
}

}  // namespace hashmem::hashhop
