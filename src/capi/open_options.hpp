// capi/open_options.hpp — the options JSON of hm_table_open, mapped onto store::OpenOptions.
#pragma once

#include <string>

#include "hashmem/store.hpp"

namespace hashmem::capi {

// Parses `json` (NULL or "" = defaults): {"tier": "dram"|"ssd", "dram_budget": BYTES}. Throws Error naming an
// unknown key, a value of the wrong type, or JSON that does not parse.
store::OpenOptions parse_open_options(const char* json);

}  // namespace hashmem::capi
