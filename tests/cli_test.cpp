// The df11 command: exit codes, one-line messages, --json, no partial output.
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "safetensors_writer.h"
#include "sample_model.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using Run = df11test::CliRun;

Run df11(const std::string& args, const std::string& dir) { return df11test::run_df11(args, dir); }

void small_model(const std::string& path) {
  const auto w = df11test::gaussian_bf16(20000, 0.02, 3);
  std::vector<uint8_t> b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(path, {{"w", "BF16", {100, 200}, b}, {"n", "F32", {2}, std::vector<uint8_t>(8, 0)}});
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("cli: compress, verify, info, decompress with exit 0", "[cli]") {
  df11test::TempDir t;
  small_model(t.path + "/m.safetensors");
  Run r = df11("compress m.safetensors", t.path);
  REQUIRE(r.code == 0);
  REQUIRE(r.out.empty());  // human messages go to stderr
  REQUIRE(fs::exists(t.path + "/m.df11"));
  r = df11("verify m.df11 --against m.safetensors --device cpu", t.path);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("OK") != std::string::npos);
  r = df11("info m.df11", t.path);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("bf16-huffman") != std::string::npos);
  r = df11("info m.df11 --json", t.path);
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["files"][0]["tensors"].size() == 2);
  CHECK(j["ok"] == true);
  r = df11("decompress m.df11 -o back.safetensors", t.path);
  REQUIRE(r.code == 0);
  REQUIRE(df11test::read_file(t.path + "/back.safetensors") == df11test::read_file(t.path + "/m.safetensors"));
}

TEST_CASE("cli: usage errors exit 2", "[cli]") {
  df11test::TempDir t;
  CHECK(df11("", t.path).code == 2);
  CHECK(df11("frobnicate x", t.path).code == 2);
  CHECK(df11("compress", t.path).code == 2);
  CHECK(df11("compress x -T 0", t.path).code == 2);
  CHECK(df11("verify x --device tpu", t.path).code == 2);
  // Parse errors too: one line with the rule's name, and a report with --json.
  for (const char* args : {"frobnicate x", "compress", "compress --json", "compress x --no-such-flag"}) {
    const Run r = df11(args, t.path);
    INFO(args << ": " << r.err);
    CHECK(r.code == 2);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.rfind("df11: ", 0) == 0);
    CHECK(r.err.find("(Usage)") != std::string::npos);
  }
  // A misspelt command is named as such (CLI11 alone says "A subcommand is required").
  const Run u = df11("compres x", t.path);
  CHECK(u.err == "df11: unknown command 'compres' (compress, decompress, verify, info, bench, export); "
                 "see df11 --help (Usage)\n");
  const Run j = df11("compress --json", t.path);
  CHECK(nlohmann::json::parse(j.out)["ok"] == false);
  const Run e = df11("export -o - --format dfloat11 x", t.path);
  CHECK(e.code == 2);
  CHECK_FALSE(fs::exists(t.path + "/-"));
  const Run h = df11("--help", t.path);
  CHECK(h.code == 0);
  CHECK(h.out.find("Exit codes") != std::string::npos);
}

TEST_CASE("cli: refuses to overwrite without -f and leaves the existing file", "[cli]") {
  df11test::TempDir t;
  small_model(t.path + "/m.safetensors");
  df11test::write_file(t.path + "/m.df11", {'k', 'e', 'e', 'p'});
  Run r = df11("compress m.safetensors", t.path);
  CHECK(r.code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find("m.df11") != std::string::npos);
  CHECK(df11test::read_file(t.path + "/m.df11") == std::vector<uint8_t>{'k', 'e', 'e', 'p'});
  r = df11("compress -f m.safetensors", t.path);
  CHECK(r.code == 0);
}

TEST_CASE("cli: bad input gets one line naming the file and rule, exit 3, no output", "[cli]") {
  df11test::TempDir t;
  df11test::write_file(t.path + "/bad.safetensors", {1, 2, 3});
  Run r = df11("compress bad.safetensors", t.path);
  CHECK(r.code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find("bad.safetensors") != std::string::npos);
  CHECK(r.err.find("StTruncated") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path + "/bad.df11"));
  // No stray temporaries either.
  CHECK(df11test::temporaries_in(t.path).empty());
  r = df11("compress missing.safetensors", t.path);
  CHECK(r.code == 3);
  r = df11("decompress bad.safetensors -o x.safetensors", t.path);
  CHECK(r.code == 3);
  CHECK(r.err.find("Df11BadMagic") != std::string::npos);
}

TEST_CASE("cli: corrupt container exits 1 and names the tensor", "[cli]") {
  df11test::TempDir t;
  small_model(t.path + "/m.safetensors");
  REQUIRE(df11("compress m.safetensors", t.path).code == 0);
  // Byte inside the BF16 sign/mantissa section: the first payload starts at
  // 128 and its last bytes are sign/mantissa bytes.
  const auto info = nlohmann::json::parse(df11("info m.df11 --json", t.path).out);
  const uint64_t w_bytes = info["files"][0]["tensors"][0]["stored_bytes"];
  auto b = df11test::read_file(t.path + "/m.df11");
  b[128 + w_bytes - 50] ^= 0x40;
  df11test::write_file(t.path + "/m.df11", b);
  Run r = df11("verify m.df11 --device cpu", t.path);
  CHECK(r.code == 1);
  CHECK(r.err.find("FAILED") != std::string::npos);
  r = df11("verify m.df11 --device cpu --json", t.path);
  CHECK(r.code == 1);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["failures"].size() >= 1);
  r = df11("decompress m.df11 -o back.safetensors", t.path);
  CHECK(r.code == 1);
  CHECK_FALSE(fs::exists(t.path + "/back.safetensors"));
}

TEST_CASE("cli: outputs keep their input's mode less the umask, as cp does: private stays private", "[cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  // 022, whatever the caller's: under 077 every expected mode below would be
  // 0700 or 0600 and the test could not tell the rule from mkdtemp's.
  const mode_t mask = 022, caller = umask(mask);
  const auto mode = [](const std::string& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  const std::string m = t.path + "/model";
  REQUIRE(chmod(m.c_str(), 0750) == 0);
  REQUIRE(chmod((m + "/vision").c_str(), 0700) == 0);  // a private folder
  REQUIRE(chmod((m + "/model-00001-of-00002.safetensors").c_str(), 0600) == 0);
  REQUIRE(chmod((m + "/README.md").c_str(), 0755) == 0);      // a script's execute bit
  REQUIRE(chmod((m + "/config.json").c_str(), 0666) == 0);    // less the umask: 0644
  REQUIRE(df11("compress model -o model.df11", t.path).code == 0);
  const std::string c = t.path + "/model.df11";
  CHECK(mode(c) == 0750);
  CHECK(mode(c + "/vision") == 0700);
  CHECK(mode(c + "/model-00001-of-00002.df11") == 0600);
  CHECK(mode(c + "/README.md") == 0755);
  CHECK(mode(c + "/config.json") == 0644);
  CHECK(mode(c + "/model-00002-of-00002.df11") == 0644);
  for (const char* cmd : {"decompress model.df11 -o back", "decompress model.df11 -o back -f"}) {
    INFO(cmd);
    REQUIRE(df11(cmd, t.path).code == 0);
    const std::string r = t.path + "/back";
    CHECK(mode(r) == 0750);  // not mkdtemp's 0700
    CHECK(mode(r + "/vision") == 0700);
    CHECK(mode(r + "/model-00001-of-00002.safetensors") == 0600);
    CHECK(mode(r + "/README.md") == 0755);
    CHECK(mode(r + "/config.json") == 0644);
  }
  // A single file, and a folder with none of the input's.
  REQUIRE(df11("compress model/model-00001-of-00002.safetensors -o one.df11", t.path).code == 0);
  CHECK(mode(t.path + "/one.df11") == 0600);
  REQUIRE(df11("decompress one.df11 -o one.safetensors", t.path).code == 0);
  CHECK(mode(t.path + "/one.safetensors") == 0600);
  umask(caller);
}

TEST_CASE("cli: -f replaces an earlier output directory, never a folder holding anything else", "[cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  REQUIRE(df11("compress model -o model.df11", t.path).code == 0);
  // decompress into a folder of the user's: refused, and nothing in it touched.
  fs::create_directories(t.path + "/models/notes");
  df11test::write_file(t.path + "/models/notes/todo.txt", std::vector<uint8_t>{'x'});
  Run r = df11("decompress model.df11 -o models -f", t.path);
  CHECK(r.code == 3);
  // ... before the work: a container that would fail to decode is not reached.
  fs::copy(t.path + "/model.df11", t.path + "/bad.df11", fs::copy_options::recursive);
  auto bytes = df11test::read_file(t.path + "/bad.df11/model-00001-of-00002.df11");
  bytes[bytes.size() / 2] ^= 0x10;
  df11test::write_file(t.path + "/bad.df11/model-00001-of-00002.df11", bytes);
  r = df11("decompress bad.df11 -o models -f", t.path);
  CHECK(r.code == 3);
  CHECK(r.err.find("(OutputExists)") != std::string::npos);
  r = df11("compress model -o models -f", t.path);  // compress checks first too
  CHECK(r.code == 3);
  CHECK(r.err.find("(OutputExists)") != std::string::npos);
  CHECK(r.err.find("models: output exists and holds 'notes', which this output would not replace; -f replaces "
                   "only an earlier df11 output (remove the directory yourself) (OutputExists)") != std::string::npos);
  CHECK(fs::exists(t.path + "/models/notes/todo.txt"));
  CHECK(df11test::temporaries_in(t.path).empty());
  // An earlier restore of the same model: replaced.
  REQUIRE(df11("decompress model.df11 -o back", t.path).code == 0);
  df11test::write_file(t.path + "/back/config.json", std::vector<uint8_t>{'{', '}'});
  r = df11("decompress model.df11 -o back -f", t.path);
  CHECK(r.code == 0);
  CHECK(df11test::read_file(t.path + "/back/config.json") == df11test::read_file(t.path + "/model/config.json"));
  // ... but not once the user has put a file of their own into it.
  df11test::write_file(t.path + "/back/mine.txt", std::vector<uint8_t>{'y'});
  CHECK(df11("decompress model.df11 -o back -f", t.path).code == 3);
  CHECK(fs::exists(t.path + "/back/mine.txt"));
  // An earlier df11 directory (its manifest) is replaced whole, even where the
  // model lost a file since.
  fs::remove(t.path + "/model/README.md");
  r = df11("compress model -o model.df11 -f", t.path);
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(t.path + "/model.df11/README.md"));
  // A file is replaced by a directory, as by a file: -f means that for one file.
  df11test::write_file(t.path + "/file.df11", std::vector<uint8_t>{'z'});
  CHECK(df11("compress model -o file.df11 -f", t.path).code == 0);
  CHECK(fs::is_directory(t.path + "/file.df11"));
}

TEST_CASE("cli: info --json has a tensors array for every safetensors file, empty when it holds none", "[cli]") {
  df11test::TempDir t;
  df11test::write_safetensors(t.path + "/empty.safetensors", {});
  REQUIRE(df11("compress empty.safetensors", t.path).code == 0);
  const Run r = df11("info --json empty.df11", t.path);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["files"][0].contains("tensors"));
  CHECK(j["files"][0]["tensors"].empty());
}

TEST_CASE("cli: on a terminal the progress bar reaches 100% and no message is appended to it", "[cli]") {
  if (std::system("command -v script >/dev/null 2>&1") != 0) {
    WARN("util-linux `script` is absent: skipping (it gives df11 a terminal)");
    return;
  }
  df11test::TempDir t;
  const auto w = df11test::gaussian_bf16(2000000, 0.02, 5);
  std::vector<uint8_t> b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(t.path + "/m.safetensors", {{"a", "BF16", {1000, 1000}, std::vector<uint8_t>(b.begin(), b.begin() + 2000000)},
                                                          {"b", "BF16", {1000, 1000}, std::vector<uint8_t>(b.begin() + 2000000, b.end())}});
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  // `script` runs the command on a pseudo-terminal and copies what it printed.
  auto on_tty = [&](const std::string& args) {
    const std::string cmd = "cd '" + t.path + "' && script -qec \"'" + bin + "' " + args + "\" /dev/null > tty.out 2>&1";
    (void)std::system(cmd.c_str());
    const auto bytes = df11test::read_file(t.path + "/tty.out");
    return std::string(bytes.begin(), bytes.end());
  };
  const std::string c = on_tty("compress m.safetensors -o m.df11");
  INFO(c);
  CHECK(c.find("100%") != std::string::npos);
  CHECK(c.find("%compressed") == std::string::npos);
  CHECK(c.find("compressed 1 file(s)") != std::string::npos);
  // An error after some progress starts on a line of its own.
  auto bytes = df11test::read_file(t.path + "/m.df11");
  REQUIRE(bytes.size() > 4000);
  bytes[bytes.size() - 2000] ^= 0x40;  // in the last tensor's payload
  df11test::write_file(t.path + "/bad.df11", bytes);
  const std::string d = on_tty("decompress bad.df11 -o back.safetensors");
  INFO(d);
  CHECK(d.find("df11: ") != std::string::npos);
  CHECK(d.find("%df11: ") == std::string::npos);
}

TEST_CASE("cli: the summary line says where the output went, default names included", "[cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  Run r = df11("compress model", t.path);
  REQUIRE(r.code == 0);
  INFO(r.err);
  CHECK(r.err.rfind("compressed ", 0) == 0);
  CHECK(r.err.find(" file(s) to model.df11: ") != std::string::npos);
  fs::rename(t.path + "/model.df11", t.path + "/packed");
  r = df11("decompress packed", t.path);  // a name without .df11: restored beside it
  REQUIRE(r.code == 0);
  CHECK(r.err.find(" file(s) to packed.restored: ") != std::string::npos);
  CHECK(fs::is_directory(t.path + "/packed.restored"));
  r = df11("compress model/vision/model.safetensors -o v.df11", t.path);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("compressed 1 file(s) to v.df11: ") == 0);
  r = df11("decompress v.df11 -c -v", t.path);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("\nrestored 1 file(s) to <stdout>: ") != std::string::npos);  // after the -v line
  // --json says it too.
  r = df11("decompress v.df11 -f --json", t.path);
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["input"] == "v.df11");
  CHECK(j["output"] == "v.safetensors");
}

TEST_CASE("cli: read-only input folders stay read-only in the output, and -f still replaces it whole", "[cli]") {
  // As root, permissions would not bite: the commands run as nobody then.
  std::string as;
  if (geteuid() == 0) {
    if (std::system("command -v setpriv >/dev/null 2>&1") != 0) {
      WARN("running as root without util-linux setpriv: skipping (read-only folders do not stop root)");
      return;
    }
    as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  df11test::TempDir t;
  const mode_t caller = umask(022);
  REQUIRE(chmod(t.path.c_str(), 0777) == 0);  // nobody writes the outputs here
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  REQUIRE(chmod((t.path + "/model/vision").c_str(), 0555) == 0);
  REQUIRE(chmod((t.path + "/model").c_str(), 0555) == 0);
  const std::string bin = std::string(DF11_BINARY_DIR) + "/df11";
  auto run = [&](const std::string& args) {
    const std::string cmd = "cd '" + t.path + "' && " + as + "'" + bin + "' " + args + " -q 2>.err";
    const int st = std::system(cmd.c_str());
    INFO(args << ": " << df11test::read_text(t.path + "/.err"));
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  };
  const auto mode = [](const std::string& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  for (int round = 0; round < 2; ++round) {  // the second with -f: the first output is replaced
    INFO("round " << round);
    run(std::string("compress model -o out.df11") + (round ? " -f" : ""));
    CHECK(mode(t.path + "/out.df11") == 0555);
    CHECK(mode(t.path + "/out.df11/vision") == 0555);
    run(std::string("decompress out.df11 -o back") + (round ? " -f" : ""));
    CHECK(mode(t.path + "/back/vision") == 0555);
    // Nothing of the replaced output left behind under a hidden name.
    CHECK(df11test::temporaries_in(t.path).empty());
  }
  for (const char* d : {"/model/vision", "/model", "/out.df11/vision", "/out.df11", "/back/vision", "/back"})
    chmod((t.path + d).c_str(), 0755);
  umask(caller);
}

TEST_CASE("cli: output folders keep a set-group-ID bit inherited from their parent, inside too", "[cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  fs::create_directories(t.path + "/shared");
  REQUIRE(chmod((t.path + "/shared").c_str(), 02775) == 0);
  REQUIRE(df11("compress model -o shared/m.df11", t.path).code == 0);
  struct stat st {};
  REQUIRE(stat((t.path + "/shared/m.df11/vision").c_str(), &st) == 0);
  CHECK((st.st_mode & S_ISGID) != 0);
  REQUIRE(stat((t.path + "/shared/m.df11").c_str(), &st) == 0);
  CHECK((st.st_mode & S_ISGID) != 0);
}

TEST_CASE("cli: -f from inside the output it replaces (-o ../out/)", "[cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  REQUIRE(df11("compress model -o m.df11", t.path).code == 0);
  REQUIRE(df11("decompress m.df11 -o rest", t.path).code == 0);
  // The old output is moved aside while the command runs in it: the new
  // one's path must not go through the old one's place (it did: ENOENT, the
  // earlier output hidden and the new one stranded).
  const std::string cmd = "cd '" + t.path + "/rest' && '" + DF11_BINARY_DIR + "/df11' decompress ../m.df11 -o ../rest/ -f 2>'" +
                          t.path + "/err.txt'";
  const int st = std::system(cmd.c_str());
  INFO(df11test::read_text(t.path + "/err.txt"));
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  CHECK(df11test::read_file(t.path + "/rest/config.json") == df11test::read_file(t.path + "/model/config.json"));
  CHECK(df11test::temporaries_in(t.path).empty());
}
