// Internal: reading JSON-lines files with simdjson's On-Demand parser. A 300 MB prompt line parses at
// memory speed; strings are unescaped only when asked for.
#pragma once

#include <functional>
#include <simdjson.h>
#include <string>
#include <string_view>

namespace hashmem::hashhop {

// Calls fn(line_number, document) for every non-blank line of `path`. The file is mapped; a line is parsed
// in place when the mapping has simdjson's padding after it, else from a padded copy. `what` names the file
// kind in errors ("dataset", "predictions"). fn reports problems by throwing hashmem::Error with a message
// that this function prefixes with the file and line; simdjson errors are turned into such messages too.
void for_each_json_line(const std::string& path, const char* what,
                        const std::function<void(std::int64_t, simdjson::ondemand::document&)>& fn);

// Throws hashmem::Error when `error` is set: `wrong_type_message` for a value of the wrong type, else
// "not valid JSON: <simdjson's message>".
void check_json(simdjson::error_code error, const std::string& wrong_type_message);

}  // namespace hashmem::hashhop
