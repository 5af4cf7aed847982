// --json renderings of the library's reports (stdout, one object per run).
#pragma once
#include <nlohmann/json.hpp>

#include "df11.h"

namespace df11cli {

// with_tensors (info): every safetensors file gets a "tensors" array, empty
// for a file without tensors, so that the schema does not depend on the data.
nlohmann::ordered_json to_json(const df11::Report& r, bool with_tensors = false);
nlohmann::ordered_json to_json(const df11::VerifyReport& r);
nlohmann::ordered_json status_json(const df11::Status& s);

}  // namespace df11cli
