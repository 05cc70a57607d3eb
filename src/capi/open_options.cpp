// The options JSON of hm_table_open: a small closed set of keys, each checked for its type.
#include "capi/open_options.hpp"

#include <nlohmann/json.hpp>

#include "hashmem/error.hpp"

namespace hashmem::capi {
namespace {

store::Tier tier_from(const nlohmann::json& value) {
  if (value.is_string()) {
    const std::string name = value.get<std::string>();
    if (name == "dram") return store::Tier::dram;
    if (name == "ssd") return store::Tier::ssd;
    if (name == "cluster") return store::Tier::cluster;
  }
  throw Error("options: \"tier\" must be \"dram\", \"ssd\" or \"cluster\", not " + value.dump());
}

std::uint64_t budget_from(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  throw Error("options: \"dram_budget\" must be a non-negative integer (bytes), not " + value.dump());
}

// Parses `json` and hands each key to `take` (which returns false for a key it does not know).
template <class Take>
void parse_keys(const char* json, const char* known, Take&& take) {
  if (json == nullptr || *json == '\0') return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("options: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("options: must be a JSON object, not " + j.dump());
  for (const auto& [key, value] : j.items()) {
    if (!take(key, value)) throw Error("options: unknown key \"" + key + "\" (known: " + known + ")");
  }
}

bool take_store_key(store::OpenOptions& options, const std::string& key, const nlohmann::json& value) {
  if (key == "tier") {
    options.tier = tier_from(value);
  } else if (key == "dram_budget") {
    options.dram_budget = budget_from(value);
  } else if (key == "cluster" || key == "name") {
    if (!value.is_string() || value.get<std::string>().empty()) {
      throw Error("options: \"" + key + "\" must be a non-empty string, not " + value.dump());
    }
    (key == "cluster" ? options.cluster : options.name) = value.get<std::string>();
  } else if (key == "replica_reads") {
    if (!value.is_boolean()) throw Error("options: \"replica_reads\" must be true or false, not " + value.dump());
    options.cluster_replica_reads = value.get<bool>();
  } else {
    return false;
  }
  return true;
}

// The cluster tier names its table by "cluster" and "name"; the other tiers by the path.
void check_tier_keys(const store::OpenOptions& o) {
  if (o.tier == store::Tier::cluster && (o.cluster.empty() || o.name.empty())) {
    throw Error("options: the cluster tier needs \"cluster\" (\"HOST:PORT\") and \"name\" (the pushed table's name)");
  }
  if (o.tier != store::Tier::cluster && (!o.cluster.empty() || !o.name.empty() || o.cluster_replica_reads)) {
    throw Error("options: \"cluster\", \"name\" and \"replica_reads\" belong to \"tier\": \"cluster\"");
  }
}

}  // namespace

store::OpenOptions parse_open_options(const char* json) {
  store::OpenOptions options;
  parse_keys(json, "\"tier\", \"dram_budget\", \"cluster\", \"name\"", [&](const std::string& key, const nlohmann::json& value) {
    return take_store_key(options, key, value);
  });
  check_tier_keys(options);
  return options;
}

engram::SessionOptions parse_session_options(const char* json) {
  engram::SessionOptions options;
  parse_keys(json, "\"tier\", \"dram_budget\", \"cluster\", \"name\", \"compression\"",
             [&](const std::string& key, const nlohmann::json& value) {
               if (key != "compression") return take_store_key(options.store, key, value);
               if (!value.is_string()) {
                 throw Error("options: \"compression\" must be a path (a string), not " + value.dump());
               }
               options.compression_path = value.get<std::string>();
               return true;
             });
  check_tier_keys(options.store);
  return options;
}

}  // namespace hashmem::capi
