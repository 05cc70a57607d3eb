// capi/open_options.hpp — the options JSON of hm_table_open and hm_session_open, mapped onto store::OpenOptions
// and engram::SessionOptions.
#pragma once

#include <string>

#include "hashmem/session.hpp"
#include "hashmem/store.hpp"

namespace hashmem::capi {

// Parses `json` (NULL or "" = defaults): {"tier": "dram"|"ssd", "dram_budget": BYTES}. Throws Error naming an
// unknown key, a value of the wrong type, or JSON that does not parse.
store::OpenOptions parse_open_options(const char* json);

// The options JSON of hm_session_open: those keys plus "compression": the path of the tokenizer's compression
// JSON (engram::SessionOptions::compression_path).
engram::SessionOptions parse_session_options(const char* json);

}  // namespace hashmem::capi
