// --json renderings of the library's reports (stdout, one object per run).
#pragma once
#include <nlohmann/json.hpp>

#include "df11.h"

namespace df11cli {

nlohmann::ordered_json to_json(const df11::Report& r);
nlohmann::ordered_json to_json(const df11::VerifyReport& r);
nlohmann::ordered_json status_json(const df11::Status& s);

}  // namespace df11cli
