// df11: lossless BF16 checkpoint compression. Human messages go to stderr;
// --json prints one machine-readable object to stdout.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>

#include "bench_command.h"
#include "df11.h"
#include "export_command.h"
#include "report_json.h"

namespace {

const char* kExitCodes =
    "Exit codes:\n"
    "  0  success\n"
    "  1  verification mismatch or corrupt data\n"
    "  2  usage error\n"
    "  3  I/O error, invalid input or unsupported version\n";

struct Common {
  int verbosity = 1;  // 0 quiet, 1 normal, 2+ verbose
  bool json = false;
  unsigned threads = 0;
  bool force = false;
};

std::string human_bytes(uint64_t b) {
  char buf[32];
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1000 && u < 4) { v /= 1000; ++u; }
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// A progress bar on stderr, only when stderr is a terminal and not -q.
std::function<void(uint64_t, uint64_t)> progress_bar(const Common& c) {
  if (c.verbosity < 1 || !isatty(STDERR_FILENO)) return nullptr;
  return [last = -1](uint64_t done, uint64_t total) mutable {
    const int pct = total ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
    if (pct == last) return;
    last = pct;
    const int width = 30, fill = pct * width / 100;
    std::fprintf(stderr, "\r[%.*s%*s] %3d%%", fill, "##############################", width - fill, "", pct);
    if (pct >= 100) std::fprintf(stderr, "\r%*s\r", width + 8, "");
    std::fflush(stderr);
  };
}

int finish(const df11::Status& s, const Common& c, const nlohmann::ordered_json* body) {
  if (c.json) {
    nlohmann::ordered_json j = df11cli::status_json(s);
    if (body) j.update(*body);
    std::cout << j.dump(2) << std::endl;
  }
  if (!s.ok() && c.verbosity >= 0) std::fprintf(stderr, "df11: %s\n", s.message.c_str());
  return df11::exit_code(s.code);
}

df11::Options options_of(const Common& c) {
  df11::Options o;
  o.threads = c.threads;
  o.overwrite = c.force;
  o.progress = progress_bar(c);
  return o;
}

// compress: original -> stored; decompress: stored -> original.
void print_sizes(const df11::Report& r, const Common& c, bool compressing) {
  if (c.verbosity < 1 || c.json) return;
  auto from = [&](const auto& x) { return compressing ? x.original_bytes : x.stored_bytes; };
  auto to = [&](const auto& x) { return compressing ? x.stored_bytes : x.original_bytes; };
  if (c.verbosity >= 2)
    for (const auto& f : r.files)
      std::fprintf(stderr, "  %s: %s -> %s\n", f.path.c_str(), human_bytes(from(f)).c_str(), human_bytes(to(f)).c_str());
  const double pct = r.original_bytes ? 100.0 * static_cast<double>(r.stored_bytes) / static_cast<double>(r.original_bytes) : 0;
  std::fprintf(stderr, "%s %zu file(s): %s -> %s (%.2f%% of the original) in %.2f s\n",
               compressing ? "compressed" : "restored", r.files.size(), human_bytes(from(r)).c_str(),
               human_bytes(to(r)).c_str(), pct, r.seconds);
}

void print_info(const df11::Report& r) {
  for (const auto& f : r.files) {
    std::printf("%s\n", f.path.c_str());
    if (!f.is_safetensors) {
      std::printf("  (stored verbatim, %s)\n", human_bytes(f.original_bytes).c_str());
      continue;
    }
    std::printf("  %-48s %-5s %-18s %-12s %9s %8s %6s\n", "tensor", "dtype", "shape", "encoding", "bits/w", "H(exp)", "maxlen");
    for (const auto& t : f.tensors) {
      std::string shape = "[";
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
      shape += "]";
      if (t.encoding == "bf16-huffman")
        std::printf("  %-48s %-5s %-18s %-12s %9.3f %8.3f %6u\n", t.name.c_str(), t.dtype.c_str(), shape.c_str(),
                    t.encoding.c_str(), t.bits_per_weight, t.exponent_entropy, t.longest_code);
      else
        std::printf("  %-48s %-5s %-18s %-12s %9.3f %8s %6s\n", t.name.c_str(), t.dtype.c_str(), shape.c_str(),
                    t.encoding.c_str(), t.bits_per_weight, "-", "-");
    }
    std::printf("  total: %s -> %s (%.2f%%)\n", human_bytes(f.original_bytes).c_str(), human_bytes(f.stored_bytes).c_str(),
                f.original_bytes ? 100.0 * static_cast<double>(f.stored_bytes) / static_cast<double>(f.original_bytes) : 0.0);
  }
  if (r.files.size() > 1)
    std::printf("all files: %s -> %s (%.2f%%)\n", human_bytes(r.original_bytes).c_str(), human_bytes(r.stored_bytes).c_str(),
                r.original_bytes ? 100.0 * static_cast<double>(r.stored_bytes) / static_cast<double>(r.original_bytes) : 0.0);
}

}  // namespace

static int run(int argc, char** argv) {
  df11::install_interrupt_handlers();
  CLI::App app{"df11: lossless compression of BF16 safetensors checkpoints (format v2)", "df11"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("df11 ") + df11::version_string());
  app.require_subcommand(1);
  Common c;
  auto add_common = [&](CLI::App* sub) {
    sub->add_flag_function("-q,--quiet", [&](int64_t n) { c.verbosity -= static_cast<int>(n); }, "Less output (-qq: no error messages)");
    sub->add_flag_function("-v,--verbose", [&](int64_t n) { c.verbosity += static_cast<int>(n); }, "More output");
    sub->add_option("-T,--threads", c.threads, "Worker threads (default: all cores)")->check(CLI::Range(1u, 1024u));
    sub->add_flag("--json", c.json, "Print a machine-readable report to stdout");
    sub->footer(kExitCodes);
  };

  std::string in, out, against;
  bool verify_after = false;
  std::string device = "auto";

  auto* comp = app.add_subcommand("compress", "Compress a .safetensors file or a model directory");
  comp->add_option("input", in, "File or directory")->required();
  comp->add_option("-o,--output", out, "Output (default: X.df11 for X.safetensors, DIR.df11 for a directory)");
  comp->add_flag("-f,--force", c.force, "Overwrite an existing output");
  comp->add_flag("--verify", verify_after, "Decode what was written before reporting success");
  add_common(comp);

  auto* dec = app.add_subcommand("decompress", "Restore byte-identical .safetensors files");
  dec->add_option("input", in, ".df11 file or df11 directory")->required();
  dec->add_option("-o,--output", out, "Output (default: X.safetensors for X.df11, DIR for DIR.df11)");
  dec->add_flag("-f,--force", c.force, "Overwrite an existing output");
  add_common(dec);

  auto* ver = app.add_subcommand("verify", "Decode everything and check every checksum");
  ver->add_option("input", in, ".df11 file or df11 directory")->required();
  ver->add_option("--against", against, "Also compare with this original file or directory");
  const CLI::Validator device_check(
      [](std::string& v) -> std::string {
        if (v == "auto" || v == "cpu" || v == "cuda") return "";
        if (v.rfind("cuda:", 0) == 0 && v.size() > 5 && v.find_first_not_of("0123456789", 5) == std::string::npos) return "";
        return "expected auto, cpu, cuda or cuda:N";
      },
      "DEVICE");
  ver->add_option("--device", device, "auto | cpu | cuda | cuda:N (default auto: the GPU when present)")->check(device_check);
  add_common(ver);

  auto* inf = app.add_subcommand("info", "Per-tensor statistics of a .df11 file or directory");
  inf->add_option("input", in, ".df11 file or df11 directory")->required();
  add_common(inf);

  df11cli::BenchArgs bench_args;
  auto* ben = app.add_subcommand("bench", "GPU decode benchmark against the copy ceiling and PCIe upload");
  ben->add_option("input", bench_args.input, ".df11 file to decode (or use --synthetic)");
  ben->add_option("--synthetic", bench_args.synthetic, "llama-8b-block: the 7 matrices of a Llama-3-8B layer");
  ben->add_option("--device", bench_args.device, "cuda | cuda:N");
  ben->add_option("--reps", bench_args.reps, "Timed repetitions (median reported)");
  add_common(ben);

  df11cli::ExportArgs export_args;
  auto* exp = df11cli::add_export_subcommand(app, &export_args);
  exp->add_flag("-f,--force", c.force, "Overwrite an existing output");
  add_common(exp);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  df11::Options opt = options_of(c);
  if (comp->parsed()) {
    opt.verify_after = verify_after;
    df11::Report r;
    const df11::Status s = df11::compress(in, out, opt, &r);
    if (s.ok()) print_sizes(r, c, true);
    const auto body = df11cli::to_json(r);
    return finish(s, c, s.ok() ? &body : nullptr);
  }
  if (dec->parsed()) {
    df11::Report r;
    const df11::Status s = df11::decompress(in, out, opt, &r);
    if (s.ok()) print_sizes(r, c, false);
    const auto body = df11cli::to_json(r);
    return finish(s, c, s.ok() ? &body : nullptr);
  }
  if (ver->parsed()) {
    opt.device = device;
    df11::VerifyReport r;
    const df11::Status s = df11::verify(in, against, opt, &r);
    if (!c.json && c.verbosity >= 0)
      for (const auto& f : r.failures) std::fprintf(stderr, "FAILED %s\n", f.c_str());
    if (s.ok() && c.verbosity >= 1 && !c.json) {
      std::fprintf(stderr, "%s: OK (%" PRIu64 " file(s), %" PRIu64 " tensors%s, device %s", in.c_str(), r.files_checked,
                   r.tensors_checked, against.empty() ? "" : ", identical to the original", r.device.c_str());
      if (r.decode_seconds > 0)
        std::fprintf(stderr, ", BF16 decode %.1f GB/s", static_cast<double>(r.decoded_bytes) / r.decode_seconds / 1e9);
      std::fprintf(stderr, ")\n");
    }
    const auto body = df11cli::to_json(r);
    return finish(s, c, &body);
  }
  if (inf->parsed()) {
    df11::Report r;
    const df11::Status s = df11::info(in, opt, &r);
    if (s.ok() && !c.json) print_info(r);
    const auto body = df11cli::to_json(r);
    return finish(s, c, s.ok() ? &body : nullptr);
  }
  if (exp->parsed()) {
    df11::ExportOptions eo;
    eo.threads = c.threads;
    eo.overwrite = c.force;
    eo.progress = opt.progress;
    nlohmann::ordered_json body;
    const df11::Status s = df11cli::run_export(export_args, eo, c.verbosity, c.json, &body);
    return finish(s, c, s.ok() ? &body : nullptr);
  }
  if (ben->parsed()) {
    bench_args.threads = c.threads;
    nlohmann::ordered_json body;
    const df11::Status s = df11cli::run_bench(bench_args, c.json, &body);
    return finish(s, c, s.ok() ? &body : nullptr);
  }
  return 2;
}

// A container may legitimately decode to more memory than is available (zstd
// frames expand up to ~32000x), and the file system can fail under us: fail
// cleanly instead of std::terminate. The unwinding removes temporary output.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "df11: out of memory (Io)\n");
    return df11::exit_code(df11::Error::Io);
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "df11: %s (Io)\n", e.what());
    return df11::exit_code(df11::Error::Io);
  }
}
