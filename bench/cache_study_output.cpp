// The CSV and JSON of `hashmem bench cache` (cache_study.hpp).
#include <algorithm>
#include <cstdio>

#include "cache_study.hpp"
#include "hashmem/error.hpp"

namespace hashmem::bench {
namespace {

double per_token(std::int64_t count, const StreamInfo& s) {
  return static_cast<double>(count) / static_cast<double>(std::max<std::int64_t>(s.tokens, 1));
}

// Row reads per second a decode rate of B tokens per step of `step_ms` needs.
double iops(double misses_per_token, const StreamInfo& s, double step_ms) {
  return misses_per_token * static_cast<double>(s.requests) * 1000.0 / step_ms;
}

}  // namespace

void check_policy_name(const std::string& name) {
  if (name == "static" || name == "min" || name == "min+static") return;
  try {
    (void)store::parse_policy(name.starts_with("static+") ? name.substr(7) : name);
  } catch (const Error&) {
    throw Error("unknown policy '" + name + "' (known: lru, s3fifo, tinylfu, static, static+<lru|s3fifo|tinylfu>, "
                "min, min+static)");
  }
}

void print_csv(const CacheStudyOptions& o, const Study& st) {
  std::printf("stream,requests,policy,budget_fraction,budget_rows,budget_gb,capacity_simulated,hit_ratio,"
              "misses_per_token,compulsory_per_token,unprofiled_per_token,iops,maccesses_per_s\n");
  for (const Point& p : st.points) {
    const StreamInfo& s = st.streams[p.stream];
    const double misses = per_token(p.result.accesses - p.result.hits, s);
    std::printf("%s,%lld,%s,%.4f,%lld,%.2f,%lld,%.6f,%.4f,%.4f,%.4f,%.0f,%.2f\n", s.name.c_str(),
                static_cast<long long>(s.requests), p.policy.c_str(), p.fraction, static_cast<long long>(p.budget_rows),
                static_cast<double>(p.budget_rows) * static_cast<double>(st.row_bytes) / 1e9,
                static_cast<long long>(p.capacity), p.result.hit_ratio(), misses, per_token(p.compulsory, s),
                per_token(s.unprofiled, s), iops(misses, s, o.decode_step_ms),
                static_cast<double>(p.result.accesses) / std::max(p.seconds, 1e-9) / 1e6);
  }
}

nlohmann::ordered_json study_json(const CacheStudyOptions& o, const Study& st) {
  nlohmann::ordered_json points = nlohmann::ordered_json::array(), streams = nlohmann::ordered_json::array(),
                         domains = nlohmann::ordered_json::array(), files = nlohmann::ordered_json::array();
  for (const Point& p : st.points) {
    const StreamInfo& s = st.streams[p.stream];
    const double misses = per_token(p.result.accesses - p.result.hits, s);
    points.push_back({{"stream", s.name}, {"requests", s.requests}, {"policy", p.policy},
                      {"budget_fraction", p.fraction}, {"budget_rows", p.budget_rows},
                      {"budget_gb", static_cast<double>(p.budget_rows) * static_cast<double>(st.row_bytes) / 1e9},
                      {"capacity_simulated", p.capacity}, {"accesses", p.result.accesses}, {"hits", p.result.hits},
                      {"hit_ratio", p.result.hit_ratio()}, {"misses_per_token", misses},
                      {"compulsory_per_token", per_token(p.compulsory, s)},
                      {"iops", iops(misses, s, o.decode_step_ms)}, {"seconds", p.seconds}});
  }
  for (const StreamInfo& s : st.streams) {
    streams.push_back({{"name", s.name}, {"requests", s.requests}, {"tokens", s.tokens}, {"documents", s.documents},
                       {"accesses", s.accesses}, {"distinct_rows", s.distinct}, {"unprofiled_rows", s.unprofiled},
                       {"tokens_per_second", static_cast<double>(s.requests) * 1000.0 / o.decode_step_ms}});
  }
  for (const DomainInfo& d : st.domains) {
    domains.push_back({{"name", d.name}, {"train_tokens", d.train_tokens}, {"heldout_tokens", d.tokens}, {"heldout_documents", d.documents},
                       {"heldout_bytes", d.text_bytes}, {"encode_seconds", d.encode_seconds},
                       {"hash_seconds", d.hash_seconds}});
  }
  for (const DomainFiles& d : o.domains) files.push_back({{"name", d.name}, {"train", d.train}, {"eval", d.eval}});
  const StreamInfo& t = st.train;
  return {{"preset", o.preset}, {"tokenizer", o.tokenizer}, {"table_rows", st.table_rows}, {"row_bytes", st.row_bytes},
          {"files", files},
          {"train", {{"tokens", t.tokens}, {"documents", t.documents}, {"accesses", t.accesses},
                     {"text_bytes", t.text_bytes}, {"encode_seconds", t.encode_seconds},
                     {"hash_seconds", t.hash_seconds}}},
          {"profile_rows", st.profile_rows}, {"profile_seconds", st.profile_seconds}, {"domains", domains},
          {"static_fraction", o.static_fraction}, {"decode_step_ms", o.decode_step_ms}, {"streams", streams},
          {"points", points}};
}

}  // namespace hashmem::bench
