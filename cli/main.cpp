// df11: lossless BF16 checkpoint compression. Human messages go to stderr;
// --json prints one machine-readable object to stdout.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "bench_command.h"
#include "df11.h"
#include "human_bytes.h"
#include "export_command.h"
#include "report_json.h"
#include "stdio_spool.h"

namespace {

using df11cli::human_bytes;
using df11::one_line;

const char* kExitCodes =
    "Exit codes:\n"
    "  0  success\n"
    "  1  verification mismatch or corrupt data\n"
    "  2  usage error\n"
    "  3  I/O error, invalid input or unsupported version\n"
    "SIGINT, SIGTERM or SIGHUP: the partial output is removed, then df11 ends by\n"
    "that signal (130, 143 or 129 in a shell), so that a shell loop stops too.\n";

const char* kPipes =
    "Pipes, as in zstd: '-' as IN reads standard input; '-o -' or -c writes\n"
    "standard output (the default when IN is '-'). A named pipe as IN, such\n"
    "as <(curl ...), is read as stdin is, and needs -o or -c. The library\n"
    "needs files, so a pipe is spooled to a private directory in $TMPDIR\n"
    "(default /tmp), which is removed on exit, error, SIGINT, SIGTERM, SIGHUP; a\n"
    ".safetensors file restored to stdout is written only once it has been\n"
    "checked. Binary data is not written to or read from a terminal unless -f\n"
    "is given. Directories cannot go through a pipe. A reader that stops early\n"
    "(| head) ends df11 quietly.\n";

struct Common {
  int verbosity = 1;  // 0 quiet, 1 normal, 2+ verbose
  bool json = false;
  unsigned threads = 0;
  bool force = false;
};

// Whether a progress bar is on stderr's current line (cleared before any
// message, so that no message is appended to a bar).
bool g_bar_shown = false;
constexpr int kBarWidth = 30;  // "[" + kBarWidth + "] 100%"

void clear_progress_bar() {
  if (!g_bar_shown) return;
  std::fprintf(stderr, "\r%*s\r", kBarWidth + 8, "");
  g_bar_shown = false;
}

// A progress bar on stderr, only when stderr is a terminal and not -q.
std::function<void(uint64_t, uint64_t)> progress_bar(const Common& c) {
  if (c.verbosity < 1 || !isatty(STDERR_FILENO)) return nullptr;
  return [last = -1](uint64_t done, uint64_t total) mutable {
    const int pct = total ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
    if (pct == last) return;
    last = pct;
    const int width = kBarWidth, fill = pct * width / 100;
    std::fprintf(stderr, "\r[%.*s%*s] %3d%%", fill, "##############################", width - fill, "", pct);
    g_bar_shown = true;
    if (pct >= 100) clear_progress_bar();
    std::fflush(stderr);
  };
}

int finish(const df11::Status& s, const Common& c, const nlohmann::ordered_json* body) {
  clear_progress_bar();
  if (c.json) {
    nlohmann::ordered_json j = df11cli::status_json(s);
    if (body) j.update(*body);
    // Paths are bytes on Linux and need not be UTF-8: such bytes are printed
    // as U+FFFD rather than making the report impossible (dump would throw).
    std::cout << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << std::endl;
  }
  if (!s.ok() && c.verbosity >= 0) std::fprintf(stderr, "df11: %s\n", one_line(s.message).c_str());
  return df11::exit_code(s.code);
}

df11::Options options_of(const Common& c) {
  df11::Options o;
  o.threads = c.threads;
  o.overwrite = c.force;
  o.progress = progress_bar(c);
  return o;
}

// Whether `path` lies in the snapshots folder of a Hugging Face cache
// repository (models--ORG--NAME, datasets--..., spaces--...), at any depth.
bool in_hf_snapshots(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  if (ec) return false;
  for (std::filesystem::path dir = p.parent_path(); dir.has_relative_path(); dir = dir.parent_path()) {
    if (dir.filename() != "snapshots") continue;
    const std::string repo = dir.parent_path().filename().string();
    for (const char* kind : {"models--", "datasets--", "spaces--"})
      if (repo.rfind(kind, 0) == 0) return true;
  }
  return false;
}

// compress: original -> stored; decompress: stored -> original. `out`: where
// the output went, as the user would name it.
void print_sizes(const df11::Report& r, const Common& c, bool compressing, const std::string& out) {
  clear_progress_bar();
  if (c.verbosity < 1 || c.json) return;
  auto from = [&](const auto& x) { return compressing ? x.original_bytes : x.stored_bytes; };
  auto to = [&](const auto& x) { return compressing ? x.stored_bytes : x.original_bytes; };
  if (c.verbosity >= 2)
    for (const auto& f : r.files)
      std::fprintf(stderr, "  %s: %s -> %s\n", one_line(f.path).c_str(), human_bytes(from(f)).c_str(), human_bytes(to(f)).c_str());
  const double pct = r.original_bytes ? 100.0 * static_cast<double>(r.stored_bytes) / static_cast<double>(r.original_bytes) : 0;
  std::fprintf(stderr, "%s %zu file(s) to %s: %s -> %s (%.2f%% of the original) in %.2f s\n",
               compressing ? "compressed" : "restored", r.files.size(), one_line(out).c_str(),
               human_bytes(from(r)).c_str(), human_bytes(to(r)).c_str(), pct, r.seconds);
}

void print_info(const df11::Report& r) {
  for (const auto& f : r.files) {
    std::printf("%s\n", one_line(f.path).c_str());
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
        std::printf("  %-48s %-5s %-18s %-12s %9.3f %8.3f %6u\n", one_line(t.name).c_str(), t.dtype.c_str(), shape.c_str(),
                    t.encoding.c_str(), t.bits_per_weight, t.exponent_entropy, t.longest_code);
      else
        std::printf("  %-48s %-5s %-18s %-12s %9.3f %8s %6s\n", one_line(t.name).c_str(), t.dtype.c_str(), shape.c_str(),
                    t.encoding.c_str(), t.bits_per_weight, "-", "-");
    }
    std::printf("  total: %s -> %s (%.2f%%)\n", human_bytes(f.original_bytes).c_str(), human_bytes(f.stored_bytes).c_str(),
                f.original_bytes ? 100.0 * static_cast<double>(f.stored_bytes) / static_cast<double>(f.original_bytes) : 0.0);
  }
  if (r.files.size() > 1)
    std::printf("all files: %s -> %s (%.2f%%)\n", human_bytes(r.original_bytes).c_str(), human_bytes(r.stored_bytes).c_str(),
                r.original_bytes ? 100.0 * static_cast<double>(r.stored_bytes) / static_cast<double>(r.original_bytes) : 0.0);
}

df11::Status usage(const std::string& what) { return {df11::Error::Usage, what + " (Usage)"}; }

// Standard input was closed when df11 started (fd 0 is now /dev/null).
bool g_stdin_closed = false;
df11::Status stdin_closed_error() { return {df11::Error::Io, "<stdin>: not open (standard input was closed) (Io)"}; }

// The names the user sees for the paths the library got in place of "-" or
// of a FIFO.
struct StdioNames {
  struct Input {
    std::string path, label;  // the spool's copy; "<stdin>" or the FIFO's path
  };
  std::vector<Input> ins;  // verify --against may have two
  std::string out_path;    // "" when not a pipe
  std::string out_copy = "<stdout>";  // an I/O error while the library writes the spool's copy
  void apply(std::string& s, const std::string& out_name = "<stdout>") const {
    for (const auto& in : ins) df11cli::replace_all(s, in.path, in.label);
    if (!out_path.empty()) df11cli::replace_all(s, out_path, out_name);
  }
  void apply(df11::Status& st) const { apply(st.message); }
  // A status of the library writing the output: an I/O error there is one of
  // the copy in $TMPDIR (a pipe can be neither full nor too large).
  void apply_writing(df11::Status& st) const { apply(st.message, st.code == df11::Error::Io ? out_copy : "<stdout>"); }
  void apply(df11::Report& r) const {
    for (auto& f : r.files) apply(f.path);
  }
};

// compress / decompress with "-" for IN and/or OUT (-c: OUT is stdout).
int run_transform(bool compressing, const std::string& in, std::string out, bool to_stdout, Common& c,
                  df11::Options opt) {
  using df11cli::is_stdio;
  if (to_stdout && !out.empty() && !is_stdio(out)) return finish(usage("-c and -o FILE both name the output"), c, nullptr);
  const bool in_stdin = is_stdio(in);
  const bool in_fifo = df11cli::is_fifo(in);
  const bool out_stdout = to_stdout || is_stdio(out) || (in_stdin && out.empty());
  // The default output name comes from IN's, which for a pipe, or for
  // /dev/stdin on a file, is /dev/fd/63 or the like: a place no one means.
  const bool in_fd_path = df11cli::is_stream_path(in);
  if ((in_fifo || in_fd_path) && out.empty() && !out_stdout)
    return finish(usage(in + (in_fd_path ? ": names a file descriptor, which gives no output name"
                                         : ": is a named pipe, which gives no output name") +
                        "; name the output with -o OUT, or -c for standard output"),
                  c, nullptr);
  // A Hugging Face cache snapshot (hub/models--ORG--NAME/snapshots/REV): the
  // default output would be written into the cache, where huggingface_hub
  // takes it for another revision. The user says where it goes.
  const std::string written_to =
      out_stdout ? "<stdout>" : (out.empty() ? df11::default_output_path(in, compressing) : out);
  if (out.empty() && !out_stdout && in_hf_snapshots(written_to))
    return finish(usage(in + ": is in the Hugging Face cache, where the default output (" + written_to +
                        ") would be taken for a revision; name it with -o OUT"),
                  c, nullptr);
  if (out_stdout) {
    std::error_code ec;
    if (!in_stdin && std::filesystem::is_directory(in, ec))
      return finish(usage(in + ": a directory cannot be written to standard output (it becomes several files); give -o DIR"), c, nullptr);
    if (c.json) return finish(usage("--json and the output data cannot both go to standard output"), c, nullptr);
    // As zstd: the one-line summary is left out when the data goes to stdout.
    if (c.verbosity == 1) c.verbosity = 0;
  }
  const std::string refusal = df11cli::terminal_refusal(out_stdout, isatty(STDOUT_FILENO), in_stdin,
                                                        isatty(STDIN_FILENO), c.force);
  if (!refusal.empty()) return finish({df11::Error::Usage, refusal}, c, nullptr);

  df11cli::SpoolDir spool;  // removed on every return below
  StdioNames names;
  std::string lib_in = in, lib_out = out;
  df11::Status s;
  if ((in_stdin || in_fifo) && !out_stdout) {
    // Before the stream is read: `curl ... | df11 compress - -o existing.df11`
    // must not first copy the whole download into $TMPDIR.
    s = df11::check_file_output(out, c.force);
    if (!s.ok()) return finish(s, c, nullptr);
  }
  if (in_stdin && g_stdin_closed) return finish(stdin_closed_error(), c, nullptr);
  if (in_stdin || in_fifo) {
    s = df11cli::stream_as_path(spool, in, compressing ? "stdin.safetensors" : "stdin.df11", &lib_in);
    if (!s.ok()) return finish(s, c, nullptr);
    names.ins.push_back({lib_in, df11cli::stream_label(in)});
  }
  if (out_stdout) {
    s = spool.create();
    if (!s.ok()) return finish(s, c, nullptr);
    lib_out = spool.file(compressing ? "stdout.df11" : "stdout.safetensors");
    names.out_path = lib_out;
    names.out_copy = spool.label("<stdout>");
    opt.overwrite = false;  // -f meant "to a terminal"; the spool is fresh
  }
  df11::Report r;
  s = compressing ? df11::compress(lib_in, lib_out, opt, &r) : df11::decompress(lib_in, lib_out, opt, &r);
  names.apply_writing(s);
  names.apply(r);
  if (s.ok() && out_stdout) {
    df11cli::CopyEnd end;
    s = df11cli::copy_to_stdout(lib_out, &end);
    names.apply(s);
    if (s.ok() && end == df11cli::CopyEnd::ReaderGone) return 0;  // `| head`: quietly
  }
  if (s.ok()) print_sizes(r, c, compressing, written_to);
  auto body = df11cli::to_json(r);
  body["input"] = df11cli::stream_label(in);
  body["output"] = written_to;
  return finish(s, c, s.ok() ? &body : nullptr);
}

// verify / info inputs: "-" or a FIFO is spooled (or mapped in place when a
// file was redirected to stdin). verify's two are read together, as their
// data comes.
struct InputArg {
  const std::string& arg;
  const char* spool_name;
  std::string* lib;  // out: the path the library gets
};
df11::Status stdin_inputs(df11cli::SpoolDir& spool, std::initializer_list<InputArg> args, StdioNames* names) {
  std::vector<df11cli::StreamSource> streams;
  std::vector<std::string*> libs;
  for (const InputArg& a : args) {
    *a.lib = a.arg;
    if (!df11cli::is_stdio(a.arg) && !df11cli::is_fifo(a.arg)) continue;
    if (df11cli::is_stdio(a.arg) && g_stdin_closed) return stdin_closed_error();
    if (df11cli::is_stdio(a.arg) && isatty(STDIN_FILENO))
      return {df11::Error::Usage, "<stdin>: is a terminal; refusing to read binary data from it (redirect it) (Usage)"};
    streams.push_back({a.arg, a.spool_name, ""});
    libs.push_back(a.lib);
  }
  if (streams.empty()) return df11::Status::Ok();
  df11::Status s = df11cli::streams_as_paths(spool, streams);
  if (!s.ok()) return s;
  for (size_t i = 0; i < streams.size(); ++i) {
    *libs[i] = streams[i].path;
    names->ins.push_back({streams[i].path, df11cli::stream_label(streams[i].arg)});
  }
  return s;
}

}  // namespace

static int run(int argc, char** argv) {
  // Descriptors 0-2 that the caller closed (`2>&-`, `<&-`) are opened on
  // /dev/null first: otherwise the next file df11 opens takes the number, and
  // a message for stderr would be written into an output, or an input FIFO
  // read again as stdin. A closed stdin is still refused where `-` is used.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    if (fd == STDIN_FILENO) g_stdin_closed = true;
    // The lowest free number: fd itself, as the lower ones are open by now.
    const int null_fd = ::open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
    if (null_fd >= 0 && null_fd != fd) ::close(null_fd);
  }
  df11::install_interrupt_handlers();
  df11::install_fault_handler();  // an input cut short while mapped: an error, not SIGBUS
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which
  // df11 reports with the file's name and cleans up after, instead of the
  // default SIGXFSZ killing it with a temporary file left behind.
  signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"df11: lossless compression of BF16 safetensors checkpoints (format v2)", "df11"};
  app.footer(std::string(kPipes) + "\n" + kExitCodes);
  app.set_version_flag("--version", std::string("df11 ") + df11::version_string());
  app.require_subcommand(1);
  Common c;
  // bench and export take no pipes: their help ends with the exit codes only.
  auto add_common = [&](CLI::App* sub, bool pipes = true) {
    sub->add_flag_function("-q,--quiet", [&](int64_t n) { c.verbosity -= static_cast<int>(n); }, "Less output (-qq: no error messages)");
    sub->add_flag_function("-v,--verbose", [&](int64_t n) { c.verbosity += static_cast<int>(n); }, "More output");
    sub->add_option("-T,--threads", c.threads, "Worker threads (default: all cores)")->check(CLI::Range(1u, 1024u));
    sub->add_flag("--json", c.json, "Print a machine-readable report to stdout");
    sub->footer(pipes ? std::string(kPipes) + "\n" + kExitCodes : std::string(kExitCodes));
  };

  std::string in, out, against;
  bool verify_after = false, to_stdout = false;
  std::string device = "auto";

  auto* comp = app.add_subcommand("compress", "Compress a .safetensors file or a model directory");
  comp->add_option("input", in, "File or directory; - reads a .safetensors file from standard input")->required();
  comp->add_option("-o,--output", out, "Output (default: X.df11 for X.safetensors, DIR.df11 for a directory; - for standard output)");
  comp->add_flag("-c,--stdout", to_stdout, "Write to standard output (as -o -)");
  comp->add_flag("-f,--force", c.force, "Overwrite an existing output; allow binary data to/from a terminal");
  comp->add_flag("--verify", verify_after, "Decode what was written before reporting success");
  add_common(comp);

  auto* dec = app.add_subcommand("decompress", "Restore byte-identical .safetensors files");
  dec->add_option("input", in, ".df11 file or df11 directory; - reads a .df11 file from standard input")->required();
  dec->add_option("-o,--output", out, "Output (default: X.safetensors for X.df11, DIR for DIR.df11, DIR.restored for another directory name; - for standard output)");
  dec->add_flag("-c,--stdout", to_stdout, "Write to standard output (as -o -)");
  dec->add_flag("-f,--force", c.force, "Overwrite an existing output; allow binary data to/from a terminal");
  add_common(dec);

  auto* ver = app.add_subcommand("verify", "Decode everything and check every checksum");
  ver->add_option("input", in, ".df11 file or df11 directory; - reads a .df11 file from standard input")->required();
  ver->add_option("--against", against, "Also compare with this original file or directory (- : standard input)");
  const CLI::Validator device_check(
      [](std::string& v) -> std::string {
        df11::DeviceChoice choice;
        return df11::parse_device(v, &choice).ok() ? "" : std::string("expected ") + df11::kDeviceValues;
      },
      "DEVICE");
  ver->add_option("--device", device, "auto | cpu | cuda | cuda:N | cuda:all (default auto: the GPU when present; cuda:all spreads a directory's files over every visible GPU)")->check(device_check);
  add_common(ver);

  auto* inf = app.add_subcommand("info", "Per-tensor statistics of a .df11 file or directory");
  inf->add_option("input", in, ".df11 file or df11 directory; - reads a .df11 file from standard input")->required();
  add_common(inf);

  df11cli::BenchArgs bench_args;
  auto* ben = app.add_subcommand("bench", "GPU decode benchmark against the copy ceiling and PCIe upload");
  ben->add_option("input", bench_args.input, ".df11 file to decode (or use --synthetic)");
  ben->add_option("--synthetic", bench_args.synthetic, "llama-8b-block: the 7 matrices of a Llama-3-8B layer");
  ben->add_option("--device", bench_args.device, "cuda | cuda:N");
  ben->add_option("--reps", bench_args.reps, "Timed repetitions (median reported)");
  add_common(ben, false);

  df11cli::ExportArgs export_args;
  auto* exp = df11cli::add_export_subcommand(app, &export_args);
  exp->add_flag("-f,--force", c.force, "Overwrite an existing output");
  add_common(exp, false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line with the rule's name, as for every other error, and a --json
    // report when --json was given (CLI11's own text is two lines, unnamed).
    Common pc;
    pc.json = std::any_of(argv + 1, argv + argc, [](const char* a) { return std::strcmp(a, "--json") == 0; });
    // CLI11 says "A subcommand is required" for a misspelt one too.
    std::string what = e.what();
    std::string known;
    bool is_known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known += (known.empty() ? "" : ", ") + sub->get_name();
      is_known = is_known || (argc > 1 && sub->get_name() == argv[1]);
    }
    if (argc > 1 && argv[1][0] != '-' && !is_known) what = std::string("unknown command '") + argv[1] + "' (" + known + ")";
    return finish(usage(what + "; see df11 --help"), pc, nullptr);
  }

  df11::Options opt = options_of(c);
  if (comp->parsed() || dec->parsed()) {
    opt.verify_after = verify_after;
    return run_transform(comp->parsed(), in, out, to_stdout, c, opt);
  }
  if (ver->parsed()) {
    opt.device = device;
    if (!against.empty() && df11cli::same_stream(in, against))
      return finish(usage("the container and --against cannot both be standard input (or the same pipe)"), c,
                    nullptr);
    // Before a pipe given as --against is read: it holds one file, and a
    // directory is checked against a directory (the library's rule, said
    // here so that the pipe is not first copied into $TMPDIR).
    std::error_code dir_ec;
    if ((df11cli::is_stdio(against) || df11cli::is_fifo(against)) && !df11cli::is_stdio(in) &&
        std::filesystem::is_directory(in, dir_ec))
      return finish({df11::Error::Usage, df11cli::stream_label(against) +
                                             ": a df11 directory is checked --against a model directory, not a file "
                                             "(Usage)"},
                    c, nullptr);
    df11cli::SpoolDir spool;
    StdioNames names;
    std::string lib_in, lib_against;
    df11::Status s = against.empty()
                         ? stdin_inputs(spool, {{in, "stdin.df11", &lib_in}}, &names)
                         : stdin_inputs(spool, {{in, "stdin.df11", &lib_in}, {against, "stdin.safetensors", &lib_against}},
                                        &names);
    if (!s.ok()) return finish(s, c, nullptr);
    df11::VerifyReport r;
    s = df11::verify(lib_in, lib_against, opt, &r);
    names.apply(s);
    for (auto& f : r.failures) names.apply(f);
    if (!c.json && c.verbosity >= 0)
      for (const auto& f : r.failures) std::fprintf(stderr, "FAILED %s\n", one_line(f).c_str());
    if (s.ok() && c.verbosity >= 1 && !c.json) {
      std::fprintf(stderr, "%s: OK (%" PRIu64 " file(s), %" PRIu64 " tensors%s%s%s",
                   one_line(df11cli::stream_label(in)).c_str(), r.files_checked, r.tensors_checked,
                   against.empty() ? "" : ", identical to the original", r.device.empty() ? "" : ", device ",
                   r.device.c_str());
      if (r.decode_seconds > 0)
        std::fprintf(stderr, ", BF16 decode %.1f GB/s", static_cast<double>(r.decoded_bytes) / r.decode_seconds / 1e9);
      std::fprintf(stderr, ")\n");
    }
    const auto body = df11cli::to_json(r);
    return finish(s, c, &body);
  }
  if (inf->parsed()) {
    df11cli::SpoolDir spool;
    StdioNames names;
    std::string lib_in;
    df11::Status s = stdin_inputs(spool, {{in, "stdin.df11", &lib_in}}, &names);
    if (!s.ok()) return finish(s, c, nullptr);
    df11::Report r;
    s = df11::info(lib_in, opt, &r);
    names.apply(s);
    names.apply(r);
    if (s.ok() && !c.json) print_info(r);
    const auto body = df11cli::to_json(r, true);
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
// After a run that SIGINT, SIGTERM or SIGHUP stopped (its message printed,
// its temporaries removed), df11 ends by that signal, as GNU sort or cp do: a
// shell decides from how its child ended whether the user interrupted it, and
// on a plain exit status `for f in *; do df11 ...; done` went on to the next
// file after Ctrl-C. So too after a run that completed before it noticed the
// signal (its output is in place): the user asked to stop, and the shell must
// hear it. Returns `code` when the signal cannot end the process.
int end_by_signal_if_interrupted(int code) {
  const int sig = df11::interrupt_signal();
  if (sig == 0) return code;
  std::fflush(stdout);  // a --json report; a reader that is gone is no matter now
  std::fflush(stderr);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(sig);
  return code;
}

int main(int argc, char** argv) {
  // A closed pipe is noticed as EPIPE where df11 writes, so that it can clean
  // up its temporaries and end quietly, instead of dying half-way.
  signal(SIGPIPE, SIG_IGN);
  try {
    const int code = end_by_signal_if_interrupted(run(argc, argv));
    // Reports printed to stdout (info, --json): a reader that stopped early
    // (`df11 info | head`) is not an error; any other failed write is.
    const bool flush_failed = std::fflush(stdout) != 0;
    const int err = errno;
    if (flush_failed || std::ferror(stdout)) {
      if (df11cli::stdout_reader_gone()) return code;
      std::fprintf(stderr, "df11: <stdout>: write failed%s%s (Io)\n", flush_failed ? ": " : "",
                   flush_failed ? std::strerror(err) : "");
      return code ? code : df11::exit_code(df11::Error::Io);
    }
    return code;
  } catch (const df11::ThreadStartError& e) {
    // A thread the system refused: the threads started before it were
    // stopped and joined on the way here (codec/parallel.h).
    std::fprintf(stderr, "df11: %s (OutOfMemory)\n", e.what());
    return df11::exit_code(df11::Error::OutOfMemory);
  } catch (const std::bad_alloc&) {  // outside an operation (they name their input)
    std::fprintf(stderr, "df11: out of memory (OutOfMemory)\n");
    return df11::exit_code(df11::Error::OutOfMemory);
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "df11: %s (Io)\n", e.what());
    return df11::exit_code(df11::Error::Io);
  } catch (const std::exception& e) {
    // A bug, but still one line and an exit code instead of std::terminate;
    // unwinding has removed any temporary output.
    std::fprintf(stderr, "df11: internal error: %s (Internal)\n", e.what());
    return df11::exit_code(df11::Error::Internal);
  }
}
