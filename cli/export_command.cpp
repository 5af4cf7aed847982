#include "export_command.h"
#include "human_bytes.h"
#include "stdio_spool.h"

#include <cstdio>

namespace df11cli {

using nlohmann::ordered_json;

CLI::App* add_export_subcommand(CLI::App& app, ExportArgs* a) {
  auto* sub = app.add_subcommand("export", "Write another tool's layout: DFloat11's Hugging Face format");
  sub->add_option("input", a->input, "Model directory of safetensors, or a df11 directory")->required();
  sub->add_option("-o,--output", a->output, "Output directory")->required();
  sub->add_option("--format", a->format, "Target format (dfloat11)")->check(CLI::IsMember({"dfloat11"}));
  return sub;
}

namespace {

ordered_json to_json(const df11::ExportReport& r) {
  ordered_json j;
  j["format"] = "dfloat11";
  j["original_bytes"] = r.original_bytes;
  j["stored_bytes"] = r.stored_bytes;
  j["seconds"] = r.seconds;
  ordered_json pd = ordered_json::object();
  for (const auto& [k, v] : r.pattern_dict) pd[k] = v;
  j["pattern_dict"] = pd;
  uint64_t compressed = 0;
  ordered_json units = ordered_json::array();
  for (const auto& u : r.units) {
    compressed += u.compressed;
    ordered_json x;
    x["module"] = u.module;
    x["pattern"] = u.pattern;
    x["file"] = u.file;
    x["weights"] = u.weights;
    x["elements"] = u.elements;
    x["compressed"] = u.compressed;
    if (!u.compressed) {
      x["limit"] = u.limit;
      x["detail"] = u.detail;
    }
    x["adjustments"] = u.adjustments;
    x["original_bytes"] = u.original_bytes;
    x["stored_bytes"] = u.stored_bytes;
    if (u.compressed) {
      x["n_luts"] = u.n_luts;
      x["max_code_length"] = u.max_code_length;
      x["shared_mem_bytes"] = u.shared_mem_bytes;
    }
    units.push_back(std::move(x));
  }
  j["units_compressed"] = compressed;
  j["units_uncompressed"] = r.units.size() - compressed;
  j["units"] = units;
  j["files_written"] = r.files_written;
  j["files_copied"] = r.files_copied;
  j["files_skipped"] = r.files_skipped;
  return j;
}

}  // namespace

df11::Status run_export(const ExportArgs& a, const df11::ExportOptions& opt_in, int verbosity, bool json,
                        ordered_json* body) {
  // Directories cannot go through a pipe (and df11 never creates a file
  // named "-"), as for compress and decompress.
  if (is_stdio(a.input) || is_stdio(a.output))
    return {df11::Error::Usage, std::string(is_stdio(a.input) ? "<stdin>" : "<stdout>") +
                                    ": export reads and writes directories, which cannot go through a pipe (Usage)"};
  df11::ExportOptions opt = opt_in;
  opt.format = a.format;
  df11::ExportReport r;
  const df11::Status s = df11::export_dfloat11(a.input, a.output, opt, &r);
  if (!s.ok()) return s;
  *body = to_json(r);
  if (json || verbosity < 1) return s;
  size_t compressed = 0;
  uint64_t uw = 0, cw = 0;
  for (const auto& u : r.units) {
    if (u.compressed) {
      ++compressed;
      uw += u.original_bytes;
      cw += u.stored_bytes;
    }
    if (!u.compressed)
      std::fprintf(stderr, "  %s: stored uncompressed (%s: %s)\n", df11::one_line(u.module).c_str(), u.limit.c_str(),
                   df11::one_line(u.detail).c_str());
    for (const auto& adj : u.adjustments)
      std::fprintf(stderr, "  %s: %s\n", df11::one_line(u.module).c_str(), df11::one_line(adj).c_str());
    if (verbosity >= 2 && u.compressed && u.adjustments.empty())
      std::fprintf(stderr, "  %s: %s -> %s (%.2f%%), %u tables, codes <= %u bits, %llu bytes of shared memory\n",
                   df11::one_line(u.module).c_str(), human_bytes(u.original_bytes).c_str(), human_bytes(u.stored_bytes).c_str(),
                   100.0 * static_cast<double>(u.stored_bytes) / static_cast<double>(u.original_bytes), u.n_luts,
                   u.max_code_length, static_cast<unsigned long long>(u.shared_mem_bytes));
  }
  for (const auto& f : r.files_skipped) std::fprintf(stderr, "  not copied: %s\n", df11::one_line(f).c_str());
  std::fprintf(stderr,
               "exported %zu DFloat11 unit(s) (%zu stored uncompressed): weights %s -> %s (%.2f%%); "
               "model files %s -> %s in %.2f s\n",
               compressed, r.units.size() - compressed, human_bytes(uw).c_str(), human_bytes(cw).c_str(),
               uw ? 100.0 * static_cast<double>(cw) / static_cast<double>(uw) : 0.0, human_bytes(r.original_bytes).c_str(),
               human_bytes(r.stored_bytes).c_str(), r.seconds);
  return s;
}

}  // namespace df11cli
