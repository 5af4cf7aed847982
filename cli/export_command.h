// `df11 export --format dfloat11`: a model directory to DFloat11's layout.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "df11.h"

namespace df11cli {

struct ExportArgs {
  std::string input, output, format = "dfloat11";
};

// Adds the subcommand and its own options (the caller adds -q/-v/-T/--json/-f).
CLI::App* add_export_subcommand(CLI::App& app, ExportArgs* a);

// Runs it: human summary on stderr (every unit stored uncompressed or with a
// changed code is named, whatever the verbosity short of -q), `body` for --json.
df11::Status run_export(const ExportArgs& a, const df11::ExportOptions& opt, int verbosity, bool json,
                        nlohmann::ordered_json* body);

}  // namespace df11cli
