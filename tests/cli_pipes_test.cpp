// `-` for standard input and output (issue 11, item 5), as zstd does it:
// round trips through pipes, no file named "-", no temporaries left in
// $TMPDIR, a reader that closes early ends df11 quietly, and binary data is
// refused to and from a terminal unless -f.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

const std::string& df11_bin() {
  static const std::string b = std::string(DF11_BINARY_DIR) + "/df11";
  return b;
}

struct Sh {
  int code = -1;  // the first non-zero status in the pipeline, else 0
  std::string err;
};

// A work directory with its own $TMPDIR, so that leftovers can be counted.
struct Work {
  df11test::TempDir tmp;
  std::string dir, spool;
  Work() : dir(tmp.path), spool(tmp.path + "/tmpdir") { fs::create_directories(spool); }
  // Runs a bash script in dir with $D = df11 and TMPDIR = spool; the script's
  // stderr goes to .err; every command's exit status to .code.
  Sh run(const std::string& script) const {
    const std::string file = dir + "/.script.sh";
    std::ofstream(file) << "cd '" << dir << "' || exit 99\nexport TMPDIR='" << spool << "'\nD='" << df11_bin()
                        << "'\n" << script << " 2>.err\necho ${PIPESTATUS[*]} >.code\n";
    const int st = std::system(("bash '" + file + "'").c_str());
    REQUIRE(WIFEXITED(st));
    Sh r;
    std::istringstream codes(df11test::read_text(dir + "/.code"));
    r.code = 0;
    for (int c; codes >> c;)
      if (r.code == 0) r.code = c;
    r.err = df11test::read_text(dir + "/.err");
    return r;
  }
  bool spool_empty() const { return fs::is_empty(spool); }
};

// One BF16 tensor of n weights plus a small F32 one.
void model(const std::string& path, uint64_t n) {
  const auto w = df11test::gaussian_bf16(n, 0.02, 7);
  Bytes b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(path, {{"w", "BF16", {n}, b}, {"n", "F32", {2}, Bytes(8, 0)}}, "{\"format\":\"pt\"}");
}

// m.safetensors (300,000 weights) and ref.df11, its compression by file
// paths: what every pipe round trip must reproduce. Returns their bytes.
std::pair<Bytes, Bytes> reference_pair(const Work& w) {
  model(w.dir + "/m.safetensors", 300000);
  REQUIRE(w.run("\"$D\" compress m.safetensors -o ref.df11").code == 0);
  return {df11test::read_file(w.dir + "/m.safetensors"), df11test::read_file(w.dir + "/ref.df11")};
}

// `compress_cmd` must write a.df11 equal to ref, and `decompress_cmd`
// a.safetensors equal to orig.
void expect_round_trip(const Work& w, const std::string& compress_cmd, const std::string& decompress_cmd,
                       const Bytes& orig, const Bytes& ref) {
  Sh r = w.run(compress_cmd);
  INFO(compress_cmd << ": " << r.err);
  REQUIRE(r.code == 0);
  CHECK(df11test::read_file(w.dir + "/a.df11") == ref);
  r = w.run(decompress_cmd);
  INFO(decompress_cmd << ": " << r.err);
  REQUIRE(r.code == 0);
  CHECK(df11test::read_file(w.dir + "/a.safetensors") == orig);
}

}  // namespace

TEST_CASE("pipes: stdin to file, file to stdout, stdin to stdout round trips are byte-identical", "[cli][pipes]") {
  Work w;
  const auto [orig, ref] = reference_pair(w);

  SECTION("stdin (a pipe) to a file") {
    expect_round_trip(w, "cat m.safetensors | \"$D\" compress - -o a.df11",
                      "cat ref.df11 | \"$D\" decompress - -o a.safetensors", orig, ref);
  }
  SECTION("stdin (a redirected file) to a file") {
    Sh r = w.run("\"$D\" compress - -o a.df11 <m.safetensors");
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(df11test::read_file(w.dir + "/a.df11") == ref);
  }
  SECTION("a file to stdout: -o - and -c") {
    Sh r = w.run("\"$D\" compress m.safetensors -o - >b.df11");
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());  // as zstd: no summary line when the data goes to stdout
    CHECK(df11test::read_file(w.dir + "/b.df11") == ref);
    r = w.run("\"$D\" compress -c m.safetensors >c.df11");
    REQUIRE(r.code == 0);
    CHECK(df11test::read_file(w.dir + "/c.df11") == ref);
    r = w.run("\"$D\" decompress ref.df11 -o - >b.safetensors");
    REQUIRE(r.code == 0);
    CHECK(df11test::read_file(w.dir + "/b.safetensors") == orig);
    r = w.run("\"$D\" decompress -c ref.df11 | cat >c.safetensors");  // into a pipe
    REQUIRE(r.code == 0);
    CHECK(df11test::read_file(w.dir + "/c.safetensors") == orig);
  }
  SECTION("stdin to stdout, in one pipeline; stdout is the default when the input is -") {
    Sh r = w.run("cat m.safetensors | \"$D\" compress - | \"$D\" decompress - -o - | cat >d.safetensors");
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(df11test::read_file(w.dir + "/d.safetensors") == orig);
    r = w.run("cat m.safetensors | \"$D\" compress - -c >d.df11");
    REQUIRE(r.code == 0);
    CHECK(df11test::read_file(w.dir + "/d.df11") == ref);
  }
  SECTION("verify - and info - read the container from stdin") {
    Sh r = w.run("cat ref.df11 | \"$D\" verify - --device cpu");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(r.err.find("<stdin>: OK") != std::string::npos);
    r = w.run("cat ref.df11 | \"$D\" verify - --against m.safetensors --device cpu");
    CHECK(r.code == 0);
    r = w.run("cat m.safetensors | \"$D\" verify ref.df11 --against - --device cpu");
    CHECK(r.code == 0);
    r = w.run("cat ref.df11 | \"$D\" info - >info.txt");
    CHECK(r.code == 0);
    CHECK(df11test::read_text(w.dir + "/info.txt").find("bf16-huffman") != std::string::npos);
  }
  // Never a file named "-", never a temporary left in $TMPDIR or beside the output.
  CHECK_FALSE(fs::exists(fs::symlink_status(w.dir + "/-")));
  CHECK(w.spool_empty());
  CHECK(df11test::temporaries_in(w.dir).empty());
}

TEST_CASE("pipes: a named pipe as IN (<(...), mkfifo) is read once, as stdin is, and named in messages",
          "[cli][pipes]") {
  Work w;
  const auto [orig, ref] = reference_pair(w);
  expect_round_trip(w, "\"$D\" compress <(cat m.safetensors) -o a.df11",
                    "\"$D\" decompress <(cat ref.df11) -c >a.safetensors", orig, ref);
  Sh r = w.run("\"$D\" verify <(cat ref.df11) --against <(cat m.safetensors) --device cpu");
  CHECK(r.code == 0);
  CHECK(r.err.find("/dev/fd/") == 0);  // "/dev/fd/N: OK (...)"
  r = w.run("\"$D\" info <(cat ref.df11) >info.txt");
  CHECK(r.code == 0);
  CHECK(df11test::read_text(w.dir + "/info.txt").find("bf16-huffman") != std::string::npos);
  // A named FIFO made with mkfifo, written by another process.
  r = w.run("mkfifo p.safetensors && (cat m.safetensors >p.safetensors &) && \"$D\" compress p.safetensors -o p.df11");
  REQUIRE(r.code == 0);
  CHECK(df11test::read_file(w.dir + "/p.df11") == ref);

  // Its own name in messages, not the spool's.
  r = w.run("\"$D\" compress <(printf abc) -o x.df11");
  CHECK(r.code == 3);
  CHECK(r.err.find("df11: /dev/fd/") == 0);
  CHECK(r.err.find(": file is 3 bytes, shorter than the 8-byte header length (StTruncated)\n") != std::string::npos);
  CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  // No -o: the default name would come from /dev/fd/N, so it is asked for;
  // as for /dev/stdin on a file, which is no pipe (it made /dev/stdin.df11).
  for (const char* cmd : {"\"$D\" compress <(cat m.safetensors)", "\"$D\" compress /dev/stdin <m.safetensors",
                          "\"$D\" decompress /dev/fd/0 <ref.df11"}) {
    INFO(cmd);
    r = w.run(cmd);
    CHECK(r.code == 2);
    CHECK(r.err.find(": names a file descriptor, which gives no output name; name the output with -o OUT, or -c "
                     "for standard output (Usage)\n") != std::string::npos);
  }
  // The output is checked before the stream is read: a FIFO that no one
  // writes is not even opened (df11 would wait for a writer forever), and a
  // pipe is not spooled.
  r = w.run("mkfifo nobody && timeout 60 \"$D\" compress nobody -o ref.df11");
  CHECK(r.code == 3);
  CHECK(r.err == "df11: ref.df11: output exists (use -f to overwrite) (OutputExists)\n");
  r = w.run("timeout 60 \"$D\" decompress <(cat ref.df11) -o missing/x.safetensors");
  CHECK(r.code == 3);
  CHECK(r.err.find("df11: missing/x.safetensors: cannot create output: No such file or directory (Io)") == 0);
  // Stdin twice under two names is a usage error, not a mismatch (exit 1).
  // ({ cat || :; }: cat's SIGPIPE, when df11 refuses at once, is not the status.)
  for (const char* cmd : {"{ cat ref.df11 || :; } | \"$D\" verify - --against /dev/stdin --device cpu",
                          "{ cat ref.df11 || :; } | \"$D\" verify /dev/fd/0 --against - --device cpu",
                          "{ cat ref.df11 || :; } | \"$D\" verify /dev/stdin --against /dev/stdin --device cpu",
                          "\"$D\" verify - --against /dev/stdin --device cpu <ref.df11"}) {
    INFO(cmd);
    r = w.run(cmd);
    CHECK(r.code == 2);
    CHECK(r.err.find("cannot both be standard input (or the same pipe) (Usage)") != std::string::npos);
  }
  // A directory against a pipe: refused before the pipe is read (a writer
  // that never ends would otherwise be waited on).
  r = w.run("mkdir -p d && \"$D\" compress m.safetensors -o d/m.df11 >/dev/null 2>&1 && "
            "mkfifo nobody2 && timeout 60 \"$D\" verify d --against nobody2 --device cpu");
  CHECK(r.code == 2);
  CHECK(r.err == "df11: nobody2: a df11 directory is checked --against a model directory, not a file (Usage)\n");
  // "-" is stdin, even beside a directory named "-".
  r = w.run("mkdir -p ./- && { cat ref.df11 || :; } | \"$D\" verify - --against <(cat m.safetensors) --device cpu");
  CHECK(r.code == 0);
  // Paths through /dev/fd/N/ or /proc/self/cwd/ are ordinary paths: the
  // default output name is made from them.
  r = w.run("cp m.safetensors q.safetensors && \"$D\" compress /proc/self/cwd/q.safetensors && "
            "exec 4<. && \"$D\" decompress /dev/fd/4/q.df11 -o q2.safetensors && cmp q.safetensors q2.safetensors");
  CHECK(r.code == 0);
  CHECK(fs::exists(w.dir + "/q.df11"));
  // A regular file named twice is no stream: verify says what it finds.
  r = w.run("\"$D\" verify ref.df11 --against ref.df11 --device cpu");
  CHECK(r.code == 1);
  // SIGTERM while df11 waits for a FIFO's writer: interrupted, not an I/O error.
  // (It is sent once df11 has its handlers: SigCgt shows SIGTERM, bit 15.)
  r = w.run("{ mkfifo waiting; \"$D\" compress waiting -o w.df11 & p=$!; "
            "for i in $(seq 2000); do m=$(awk '/^SigCgt/ {print $2}' /proc/$p/status); "
            "[ $(( 0x${m:-0} & 0x4000 )) -ne 0 ] && break; sleep 0.01; done; sleep 0.2; kill -TERM $p; wait $p; }");
  CHECK(r.code == 128 + SIGTERM);  // ended by the signal, after its message
  CHECK(r.err == "df11: waiting: interrupted by signal; temporary files removed (Interrupted)\n");
  CHECK(w.spool_empty());
  CHECK(df11test::temporaries_in(w.dir).empty());
}

TEST_CASE("pipes: verify reads its two streams as their data comes, whichever writer comes first", "[cli][pipes]") {
  Work w;
  const auto [orig, ref] = reference_pair(w);
  REQUIRE(orig.size() > (size_t{256} << 10));  // far more than a pipe's buffer (64 KiB)
  // One pass over a download, compressed and checked against the same bytes:
  // tee fills B while compress, which writes A only once its input has
  // ended, is still reading. Reading A to its end first (or even waiting in
  // open(A)) would stop tee on a full B, and so compress, for ever. The
  // writers have their own timeout, so that a failure leaves no process behind.
  Sh r = w.run("export D && mkfifo A B && { timeout 60 sh -c 'cat m.safetensors | tee B | \"$D\" compress - -o - >A' "
               "2>/dev/null & } && timeout 60 \"$D\" verify A --against B --device cpu");
  CHECK(r.code == 0);
  CHECK(r.err.find("A: OK (1 file(s), ") == 0);
  // One writer that feeds --against first, then the container.
  r = w.run("mkfifo C E && { timeout 60 sh -c 'cat m.safetensors >E; cat ref.df11 >C' 2>/dev/null & } && "
            "timeout 60 \"$D\" verify C --against E --device cpu");
  CHECK(r.code == 0);
  // The container on stdin, --against a FIFO written only after stdin ended.
  r = w.run("mkfifo G && { timeout 60 sh -c 'sleep 0.3; cat m.safetensors >G' 2>/dev/null & } && "
            "timeout 60 \"$D\" verify - --against G --device cpu <ref.df11");
  CHECK(r.code == 0);
  // And the streams are still each checked: a wrong original is a mismatch.
  r = w.run("mkfifo H K && { timeout 60 sh -c 'head -c 1000 m.safetensors >K; cat ref.df11 >H' 2>/dev/null & } && "
            "timeout 60 \"$D\" verify H --against K --device cpu");
  CHECK(r.code != 0);
  CHECK(r.code != 124);
  CHECK(w.spool_empty());
}

TEST_CASE("pipes: a closed or write-only stdin is an error, never another stream's data or a wait", "[cli][pipes]") {
  Work w;
  const auto [orig, ref] = reference_pair(w);
  // Closed (<&-): the FIFO opened next must not take descriptor 0 and be read
  // as stdin too (it was: half of its data in each copy, a false Df11Truncated).
  // The FIFO's writer is stopped afterwards and holds no inherited output
  // (under ctest, an open stdout kept the test waiting for its 60 s).
  Sh r = w.run("mkfifo F && { timeout 60 sh -c 'cat ref.df11 >F' >/dev/null 2>&1 & } && writer=$! && "
               "trap 'kill $writer 2>/dev/null' EXIT && timeout 60 \"$D\" verify F --against - --device cpu <&-");
  CHECK(r.code == 3);
  CHECK(r.err == "df11: <stdin>: not open (standard input was closed) (Io)\n");
  r = w.run("timeout 60 \"$D\" compress - -o c.df11 <&-");
  CHECK(r.code == 3);
  CHECK(r.err == "df11: <stdin>: not open (standard input was closed) (Io)\n");
  CHECK_FALSE(fs::exists(w.dir + "/c.df11"));
  // A file to a file with stdin and stderr closed: descriptors 0-2 stay taken,
  // so no message or input lands in an output.
  r = w.run("{ \"$D\" compress m.safetensors -o d.df11 -v <&- 2>&-; }");
  CHECK(r.code == 0);
  CHECK(df11test::read_file(w.dir + "/d.df11") == ref);
  // The write end of a pipe as stdin: an error at once (poll() would wait).
  r = w.run("timeout 60 \"$D\" info - 0> >(cat >/dev/null)");
  CHECK(r.code == 3);
  CHECK(r.err == "df11: <stdin>: read failed: not open for reading (Io)\n");
  CHECK(w.spool_empty());
}

TEST_CASE("pipes: bad data on stdin is named <stdin>, exits 3 or 1, and leaves nothing in TMPDIR", "[cli][pipes]") {
  Work w;
  model(w.dir + "/m.safetensors", 20000);
  REQUIRE(w.run("\"$D\" compress m.safetensors -o ref.df11").code == 0);
  Sh r = w.run("printf 'abc' | \"$D\" compress - -o x.df11");
  CHECK(r.code == 3);
  CHECK(r.err == "df11: <stdin>: file is 3 bytes, shorter than the 8-byte header length (StTruncated)\n");
  CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  r = w.run("cat m.safetensors | \"$D\" decompress - -o x.safetensors");
  CHECK(r.code == 3);
  CHECK(r.err.find("<stdin>") != std::string::npos);
  CHECK(r.err.find("Df11BadMagic") != std::string::npos);
  // A corrupt container through stdin to stdout: nothing is written (only
  // checked data goes out), the error names the rule.
  auto b = df11test::read_file(w.dir + "/ref.df11");
  b[b.size() / 2] ^= 0x10;
  df11test::write_file(w.dir + "/bad.df11", b);
  r = w.run("cat bad.df11 | \"$D\" decompress - >out.safetensors");
  CHECK(r.code == 1);
  CHECK(fs::file_size(w.dir + "/out.safetensors") == 0);
  CHECK(w.spool_empty());
  CHECK_FALSE(fs::exists(w.dir + "/-"));
}

TEST_CASE("pipes: a copy in $TMPDIR that cannot be written is named as such, not as the pipe", "[cli][pipes]") {
  Work w;
  model(w.dir + "/m.safetensors", 300000);  // 600 KB of weights
  REQUIRE(w.run("\"$D\" compress m.safetensors -o m.df11").code == 0);
  // ulimit -f 100: files of at most 100 KiB. The pipes themselves have no
  // such limit; df11's copies of them in $TMPDIR do (df11 ignores SIGXFSZ).
  const std::string copy_of = " (its copy in $TMPDIR=" + w.spool + "): ";
  Sh r = w.run("(set -o pipefail; ulimit -f 100; \"$D\" decompress m.df11 -o - | cat >/dev/null)");
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("df11: <stdout>" + copy_of) == 0);
  CHECK(r.err.find("File too large (Io)\n") != std::string::npos);
  r = w.run("(ulimit -f 100; cat m.safetensors | \"$D\" compress - -o x.df11)");
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err == "df11: <stdin>" + copy_of + "write failed: File too large (Io)\n");
  CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  CHECK(w.spool_empty());
}

TEST_CASE("pipes: a reader that closes early ends df11 quietly (exit 0 or SIGPIPE, empty stderr)", "[cli][pipes]") {
  Work w;
  model(w.dir + "/m.safetensors", 2000000);  // 4 MB: far more than a pipe holds
  REQUIRE(w.run("\"$D\" compress m.safetensors -o m.df11").code == 0);
  {  // info and --json with more output than a pipe holds
    std::vector<df11test::StEntry> many;
    for (int i = 0; i < 3000; ++i) many.push_back({"model.layers." + std::to_string(i) + ".weight", "F32", {1}, Bytes(4, 0)});
    df11test::write_safetensors(w.dir + "/many.safetensors", many);
    REQUIRE(w.run("\"$D\" compress many.safetensors -o many.df11").code == 0);
  }
  for (const char* cmd : {"\"$D\" decompress m.df11 -o - | head -c 10 >/dev/null",
                          "\"$D\" compress m.safetensors -c | head -c 10 >/dev/null",
                          "cat m.safetensors | \"$D\" compress - | head -c 1 >/dev/null",
                          "\"$D\" info many.df11 | head -n 2 >/dev/null",
                          "\"$D\" info many.df11 --json | head -c 10 >/dev/null"}) {
    INFO(cmd);
    const Sh r = w.run(std::string("set -o pipefail; ") + cmd);
    // Either is quiet; df11 chose exit 0 (it ignores SIGPIPE so that it can
    // remove its spool on EPIPE), which also keeps `set -o pipefail` scripts
    // such as scripts/demo.sh going.
    CHECK(r.code == 0);
    CHECK(r.err.empty());
  }
  CHECK(w.spool_empty());
}

TEST_CASE("pipes: usage errors (exit 2): directories, --json with data on stdout, -c with -o FILE", "[cli][pipes]") {
  Work w;
  fs::create_directories(w.dir + "/dir");
  model(w.dir + "/dir/model.safetensors", 1000);
  REQUIRE(w.run("\"$D\" compress dir -o dir.df11").code == 0);
  Sh r = w.run("\"$D\" compress dir -o - >out");
  CHECK(r.code == 2);
  CHECK(r.err.find("directory") != std::string::npos);
  CHECK(r.err.find("(Usage)") != std::string::npos);
  r = w.run("\"$D\" decompress dir.df11 -c >out");
  CHECK(r.code == 2);
  CHECK(r.err.find("directory") != std::string::npos);
  r = w.run("\"$D\" compress dir/model.safetensors -o - --json >out");
  CHECK(r.code == 2);
  r = w.run("\"$D\" compress dir/model.safetensors -c -o x.df11");
  CHECK(r.code == 2);
  CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  r = w.run("\"$D\" verify - --against - </dev/null");
  CHECK(r.code == 2);
  CHECK(w.spool_empty());
  // --help says where pipes are spooled.
  r = w.run("\"$D\" compress --help >help.txt");
  CHECK(r.code == 0);
  CHECK(df11test::read_text(w.dir + "/help.txt").find("$TMPDIR") != std::string::npos);
}

namespace {

struct PtyRun {
  int code = -1;
  std::string err, tty;  // stderr, and what reached the terminal
};

// Runs df11 with stdout (and stdin, if tty_stdin) on a new pseudo-terminal.
PtyRun run_on_pty(const std::vector<std::string>& args, const std::string& dir, bool tty_stdin) {
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(grantpt(master) == 0);
  REQUIRE(unlockpt(master) == 0);
  const std::string slave_name = ptsname(master);
  std::vector<std::string> all = {df11_bin()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err_path = dir + "/.pty_err";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    setsid();
    const int slave = open(slave_name.c_str(), O_RDWR);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = open("/dev/null", O_RDONLY);
    if (slave < 0 || err < 0 || null < 0 || chdir(dir.c_str()) != 0) _exit(120);
    dup2(tty_stdin ? slave : null, 0);
    dup2(slave, 1);
    dup2(err, 2);
    close(master);
    execv(argv[0], argv.data());
    _exit(127);
  }
  PtyRun r;
  char buf[4096];
  for (;;) {  // drain until the child's side closes (EIO)
    const ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) r.tty.append(buf, static_cast<size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  int st = 0;
  waitpid(pid, &st, 0);
  close(master);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.err = df11test::read_text(err_path);
  return r;
}

}  // namespace

TEST_CASE("pipes: binary data to or from a terminal is refused (exit 2) unless -f", "[cli][pipes]") {
  Work w;
  model(w.dir + "/m.safetensors", 20000);
  REQUIRE(w.run("\"$D\" compress m.safetensors -o m.df11").code == 0);
  PtyRun r = run_on_pty({"decompress", "m.df11", "-o", "-"}, w.dir, false);
  CHECK(r.code == 2);
  CHECK(r.err.find("terminal") != std::string::npos);
  CHECK(r.err.find("-f") != std::string::npos);
  CHECK(r.tty.empty());
  r = run_on_pty({"compress", "m.safetensors", "-c"}, w.dir, false);
  CHECK(r.code == 2);
  CHECK(r.tty.empty());
  r = run_on_pty({"compress", "-", "-o", "x.df11"}, w.dir, true);  // stdin is the terminal
  CHECK(r.code == 2);
  CHECK(r.err.find("<stdin>") != std::string::npos);
  CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  r = run_on_pty({"verify", "-"}, w.dir, true);
  CHECK(r.code == 2);
  // -f: the user insists.
  r = run_on_pty({"compress", "m.safetensors", "-c", "-f"}, w.dir, false);
  CHECK(r.code == 0);
  CHECK(r.tty.size() > 1000);
  // Text reports are fine on a terminal.
  r = run_on_pty({"info", "m.df11"}, w.dir, false);
  CHECK(r.code == 0);
  CHECK(r.tty.find("bf16-huffman") != std::string::npos);
  CHECK(w.spool_empty());
}

namespace {

// df11 compress - -o x.df11 with a pipe on stdin: 64 KiB are written, and
// once they are in the spool `sig` is sent. Returns the wait status. The
// pipe's writer is closed after df11 ends, or, when `sig` is ignored, 200 ms
// after it was sent (df11 then reads to the end).
int signal_while_spooling(const Work& w, int sig, bool ignored, const std::string& err_path) {
  int in[2];
  REQUIRE(pipe(in) == 0);
  const std::string spool = w.spool;
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(in[0], 0);
    close(in[1]);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(err, 2);
    setenv("TMPDIR", spool.c_str(), 1);
    if (chdir(w.dir.c_str()) != 0) _exit(120);
    // What a user's shell gives (a test runner may ignore some signals).
    for (const int s : {SIGINT, SIGTERM, SIGHUP}) signal(s, SIG_DFL);
    if (ignored) signal(sig, SIG_IGN);  // as under nohup
    execl(df11_bin().c_str(), "df11", "compress", "-", "-o", "x.df11", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  const Bytes chunk(1 << 16, 0x42);
  REQUIRE(write(in[1], chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()));
  // Wait until the spool holds data, then signal while df11 waits for more.
  bool spooling = false;
  for (int i = 0; i < 2000 && !spooling; ++i) {  // up to 20 s: df11 under ASan on a loaded machine
    for (const auto& d : fs::directory_iterator(spool))
      for (const auto& f : fs::directory_iterator(d.path()))
        if (fs::file_size(f.path()) == chunk.size()) spooling = true;
    if (!spooling) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(spooling);
  kill(pid, sig);
  int st = 0;
  if (ignored) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // time to (wrongly) act on it
    close(in[1]);
    waitpid(pid, &st, 0);
  } else {
    waitpid(pid, &st, 0);  // the writer stays open: df11 must stop on the signal alone
    close(in[1]);
  }
  return st;
}

}  // namespace

TEST_CASE("pipes: SIGINT, SIGTERM or SIGHUP while stdin is being spooled removes the spool", "[cli][pipes][faults]") {
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    INFO("signal " << sig);
    Work w;
    const std::string err_path = w.dir + "/.sig_err";
    const int st = signal_while_spooling(w, sig, false, err_path);
    INFO("stderr: " << df11test::read_text(err_path));
    // The message and the clean-up, then the end by that same signal.
    REQUIRE(WIFSIGNALED(st));
    CHECK(WTERMSIG(st) == sig);
    CHECK(df11test::read_text(err_path).find("(Interrupted)") != std::string::npos);
    CHECK(w.spool_empty());
    CHECK_FALSE(fs::exists(w.dir + "/x.df11"));
  }
}

TEST_CASE("pipes: a signal the caller ignores (nohup) stays ignored", "[cli][pipes][faults]") {
  Work w;
  const std::string err_path = w.dir + "/.sig_err";
  const int st = signal_while_spooling(w, SIGHUP, true, err_path);
  // df11 read on to the end of the pipe: 64 KiB of 0x42 are no safetensors
  // file, which is what it says, not that it was interrupted.
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 3);
  const std::string err = df11test::read_text(err_path);
  INFO(err);
  CHECK(err.find("(Interrupted)") == std::string::npos);
  CHECK(err.find("df11: <stdin>: ") == 0);
  CHECK(w.spool_empty());
}
