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
  }
  throw Error("options: \"tier\" must be \"dram\" or \"ssd\", not " + value.dump());
}

std::uint64_t budget_from(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  throw Error("options: \"dram_budget\" must be a non-negative integer (bytes), not " + value.dump());
}

}  // namespace

store::OpenOptions parse_open_options(const char* json) {
  store::OpenOptions options;
  if (json == nullptr || *json == '\0') return options;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("options: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("options: must be a JSON object, not " + j.dump());
  for (const auto& [key, value] : j.items()) {
    if (key == "tier") {
      options.tier = tier_from(value);
    } else if (key == "dram_budget") {
      options.dram_budget = budget_from(value);
    } else {
      throw Error("options: unknown key \"" + key + "\" (known: \"tier\", \"dram_budget\")");
    }
  }
  return options;
}

}  // namespace hashmem::capi
