// Output and input paths at the command line: the input is never modified,
// whatever -o and -f say; every name df11 writes into a manifest can be read
// back; "DIR/" and "DIR/." name DIR; reports stay valid JSON for any file name.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "safetensors_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

using Run = df11test::CliRun;

Run df11(const std::string& args, const std::string& dir) { return df11test::run_df11(args, dir); }

void small_model(const std::string& path, uint64_t seed = 3) {
  const auto w = df11test::gaussian_bf16(20000, 0.02, seed);
  Bytes b(w.size() * 2);
  std::memcpy(b.data(), w.data(), b.size());
  df11test::write_safetensors(path, {{"w", "BF16", {100, 200}, b}, {"n", "F32", {2}, Bytes(8, 0)}});
}

// Every entry under `dir`, relative, sorted, with contents for files.
std::vector<std::pair<std::string, Bytes>> snapshot(const std::string& dir) {
  std::vector<std::pair<std::string, Bytes>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    if (rel == ".out" || rel == ".err") continue;  // run_df11's captures of stdout and stderr
    out.push_back({rel, e.is_regular_file() ? df11test::read_file(e.path().string()) : Bytes()});
  }
  std::sort(out.begin(), out.end());
  return out;
}

// DIR/md (a model and a config.json) and DIR/md.df11, its compressed copy.
void compressed_model_dir(const std::string& dir) {
  fs::create_directories(dir + "/md");
  small_model(dir + "/md/model.safetensors");
  df11test::write_file(dir + "/md/config.json", {'{', '}'});
  REQUIRE(df11("compress md -o md.df11", dir).code == 0);
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

void refused(const Run& r, const std::string& why) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find("(Usage)") != std::string::npos);
  CHECK(r.err.find(why) != std::string::npos);
}

}  // namespace

TEST_CASE("cli: the output never overwrites, replaces or lands inside the input, even with -f", "[cli][paths]") {
  df11test::TempDir t;
  fs::create_directories(t.path + "/p/model");
  small_model(t.path + "/p/model/model.safetensors");
  small_model(t.path + "/same.safetensors");
  REQUIRE(df11("compress p/model -o md.df11", t.path).code == 0);
  REQUIRE(df11("compress same.safetensors -o same.df11", t.path).code == 0);
  const auto before = snapshot(t.path);

  SECTION("a file onto itself") {
    refused(df11("compress same.safetensors -o same.safetensors -f", t.path), "the output is the input");
    refused(df11("decompress same.df11 -o ./same.df11 -f", t.path), "the output is the input");
  }
  SECTION("a file onto another hard link of itself") {
    fs::create_hard_link(t.path + "/same.safetensors", t.path + "/alias.safetensors");
    refused(df11("compress same.safetensors -o alias.safetensors -f", t.path), "the output is the input");
    fs::remove(t.path + "/alias.safetensors");
  }
  SECTION("a directory above the input") {
    refused(df11("compress p/model -o p -f", t.path), "would remove the input");
    refused(df11("compress p/model/model.safetensors -o p -f", t.path), "would remove the input");
    refused(df11("decompress md.df11 -o . -f", t.path), "would remove the input");
    refused(df11("decompress md.df11 -o \"$PWD/\" -f", t.path), "would remove the input");
  }
  SECTION("inside the input directory") {
    refused(df11("decompress md.df11 -o md.df11/sub -f", t.path), "inside the input directory");
    refused(df11("compress p -o p/out.df11", t.path), "inside the input directory");
  }
  SECTION("the input directory itself") {
    refused(df11("compress p/model -o p/model/ -f", t.path), "the output is the input");
  }
  CHECK(snapshot(t.path) == before);
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("cli: DirUnsupportedName: a name a manifest cannot record is refused before anything is written", "[cli][paths]") {
  df11test::TempDir t;
  for (const std::string& bad : std::vector<std::string>{"we\\ird.txt", "x\xfe.safetensors"}) {
    DYNAMIC_SECTION("entry " << (bad[0] == 'w' ? "with a backslash" : "not UTF-8")) {
      fs::create_directories(t.path + "/m/sub");
      small_model(t.path + "/m/model.safetensors");
      df11test::write_file(t.path + "/m/sub/" + bad, {'h', 'i'});
      const auto before = snapshot(t.path);
      const Run r = df11("compress m --json", t.path);
      INFO("stderr: " << r.err);
      CHECK(r.code == 3);
      CHECK(lines(r.err) == 1);
      CHECK(r.err.find("DirUnsupportedName") != std::string::npos);
      CHECK(r.err.find("sub/") != std::string::npos);  // names the entry
      CHECK(nlohmann::json::parse(r.out)["ok"] == false);
      CHECK_FALSE(fs::exists(t.path + "/m.df11"));
      CHECK(df11test::temporaries_in(t.path).empty());
      CHECK(snapshot(t.path) == before);
      // A directory name is checked as well.
      fs::remove_all(t.path + "/m/sub");
      fs::create_directories(t.path + "/m/" + bad + ".d");
      const Run d = df11("compress m", t.path);
      CHECK(d.code == 3);
      CHECK(d.err.find("DirUnsupportedName") != std::string::npos);
      fs::remove_all(t.path + "/m");
    }
  }
}

TEST_CASE("cli: --json reports stay valid JSON when a file name is not UTF-8", "[cli][paths]") {
  df11test::TempDir t;
  small_model(t.path + "/bad\xff.safetensors");
  Run r = df11("compress --json \"$(printf 'bad\\377.safetensors')\"", t.path);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["ok"] == true);
  r = df11("info --json \"$(printf 'bad\\377.df11')\"", t.path);
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["files"].size() == 1);
  r = df11("info --json \"$(printf 'missing\\377.df11')\"", t.path);
  CHECK(r.code == 3);
  CHECK(nlohmann::json::parse(r.out)["ok"] == false);
}

TEST_CASE("cli: a control character in a file name is escaped, so that every message stays one line",
          "[cli][paths]") {
  df11test::TempDir t;
  df11test::write_file(t.path + "/bad\nname\x1b[31m.safetensors", {'a', 'b', 'c'});
  const Run r = df11("compress \"$(printf 'bad\\nname\\033[31m.safetensors')\" -o x.df11", t.path);
  CHECK(r.code == 3);
  CHECK(r.err == "df11: bad\\nname\\x1b[31m.safetensors: file is 3 bytes, shorter than the 8-byte header length "
                 "(StTruncated)\n");
  // A C1 control (U+009B, the one-character CSI) as well; other UTF-8 passes.
  df11test::write_file(t.path + "/c1\xc2\x9b-\xc3\xa9.safetensors", {'a', 'b', 'c'});
  const Run c1 = df11("compress \"$(printf 'c1\\302\\233-\\303\\251.safetensors')\" -o y.df11", t.path);
  CHECK(c1.code == 3);
  CHECK(c1.err.find("df11: c1\\xc2\\x9b-\xc3\xa9.safetensors: file is 3 bytes") == 0);
  // Tensor names in `info`, and file names in the lines of verify and -v.
  const std::string odd = "w\nx\x1b";
  const auto w16 = df11test::gaussian_bf16(4096, 0.02, 3);
  Bytes wb(w16.size() * 2);
  std::memcpy(wb.data(), w16.data(), wb.size());
  df11test::write_safetensors(t.path + "/n\x1b.safetensors", {{odd, "BF16", {4096}, wb}});
  Run v = df11("compress -v \"$(printf 'n\\033.safetensors')\" -o odd.df11", t.path);
  REQUIRE(v.code == 0);
  CHECK(v.err.find("n\\x1b.safetensors: ") != std::string::npos);
  CHECK(v.err.find('\x1b') == std::string::npos);
  v = df11("info odd.df11", t.path);
  REQUIRE(v.code == 0);
  CHECK(v.out.find("w\\nx\\x1b ") != std::string::npos);
  CHECK(v.out.find('\x1b') == std::string::npos);
  fs::rename(t.path + "/odd.df11", t.path + "/o\nd.df11");
  v = df11("verify --device cpu \"$(printf 'o\\nd.df11')\"", t.path);
  REQUIRE(v.code == 0);
  CHECK(v.err.find("o\\nd.df11: OK (") == 0);
}

TEST_CASE("cli: DIR/ and DIR/. name DIR, for -o and for the default output", "[cli][paths]") {
  df11test::TempDir t;
  fs::create_directories(t.path + "/md");
  small_model(t.path + "/md/model.safetensors");
  small_model(t.path + "/md/extra.safetensors", 5);
  const auto before = snapshot(t.path + "/md");

  Run r = df11("compress md -o newout/", t.path);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(fs::is_regular_file(t.path + "/newout/df11-manifest.json"));
  r = df11("compress md -o newout/ -f", t.path);  // replacing an existing one
  REQUIRE(r.code == 0);
  r = df11("decompress newout/ -o back/", t.path);
  REQUIRE(r.code == 0);
  CHECK(snapshot(t.path + "/back") == before);

  r = df11("compress md/.", t.path);
  REQUIRE(r.code == 0);
  CHECK(fs::is_regular_file(t.path + "/md.df11/df11-manifest.json"));  // beside md, not "md/..df11"
  CHECK(snapshot(t.path + "/md") == before);
  r = df11("decompress md.df11/. -o restored", t.path);
  REQUIRE(r.code == 0);
  CHECK(snapshot(t.path + "/restored") == before);
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("cli: a directory named X.safetensors compresses to X.safetensors.df11 and comes back under its name",
          "[cli][paths]") {
  df11test::TempDir t;
  fs::create_directories(t.path + "/x.safetensors");
  small_model(t.path + "/x.safetensors/model.safetensors");
  const auto before = snapshot(t.path + "/x.safetensors");
  Run r = df11("compress x.safetensors", t.path);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(fs::is_regular_file(t.path + "/x.safetensors.df11/df11-manifest.json"));
  CHECK_FALSE(fs::exists(t.path + "/x.df11"));
  fs::rename(t.path + "/x.safetensors", t.path + "/original");
  r = df11("decompress x.safetensors.df11", t.path);
  REQUIRE(r.code == 0);
  CHECK(snapshot(t.path + "/x.safetensors") == before);
}

TEST_CASE("cli: verify DIR --against ORIG reports what only ORIG holds; file against directory is a usage error", "[cli][paths]") {
  df11test::TempDir t;
  compressed_model_dir(t.path);
  REQUIRE(df11("compress md/model.safetensors -o one.df11", t.path).code == 0);
  Run r = df11("verify md.df11 --against md", t.path);
  INFO("stderr: " << r.err);
  CHECK(r.code == 0);

  small_model(t.path + "/md/model-extra.safetensors", 9);
  fs::create_directories(t.path + "/md/sub");
  df11test::write_file(t.path + "/md/sub/extra.txt", {'x'});
  fs::create_directories(t.path + "/md/newdir");
  r = df11("verify md.df11 --against md", t.path);
  CHECK(r.code == 1);
  CHECK(r.err.find("model-extra.safetensors: in md but not in the df11 directory") != std::string::npos);
  CHECK(r.err.find("sub/extra.txt") != std::string::npos);
  CHECK(r.err.find("newdir") != std::string::npos);

  r = df11("verify md.df11 --against md/model.safetensors", t.path);
  CHECK(r.code == 2);
  CHECK(lines(r.err) == 1);
  r = df11("verify one.df11 --against md", t.path);
  CHECK(r.code == 2);
  CHECK(lines(r.err) == 1);
}

TEST_CASE("cli: a copied file's size is checked against the manifest by verify and decompress", "[cli][paths]") {
  df11test::TempDir t;
  compressed_model_dir(t.path);
  const std::string mpath = t.path + "/md.df11/df11-manifest.json";
  const auto text = df11test::read_file(mpath);
  auto j = nlohmann::ordered_json::parse(text.begin(), text.end());
  bool edited = false;
  for (auto& f : j["files"])
    if (f["path"] == "config.json") {
      f["size"] = 999;
      edited = true;
    }
  REQUIRE(edited);
  const std::string out = j.dump(1) + "\n";
  df11test::write_file(mpath, Bytes(out.begin(), out.end()));
  Run r = df11("verify md.df11", t.path);
  INFO("stderr: " << r.err);
  CHECK(r.code == 1);
  CHECK(r.err.find("config.json: size differs from the manifest's 999 bytes") != std::string::npos);
  r = df11("decompress md.df11 -o back", t.path);
  CHECK(r.code == 1);
  CHECK(r.err.find("manifest says 999") != std::string::npos);
  CHECK_FALSE(fs::exists(t.path + "/back"));
}

TEST_CASE("cli: a file output that is an existing directory is refused up front, with -f too", "[cli][paths]") {
  df11test::TempDir t;
  small_model(t.path + "/m.safetensors");
  fs::create_directories(t.path + "/outdir");
  for (const char* args : {"compress m.safetensors -o outdir", "compress m.safetensors -o outdir -f"}) {
    const Run r = df11(args, t.path);
    INFO(args << ": " << r.err);
    CHECK(r.code == 3);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find("output is a directory") != std::string::npos);
  }
  CHECK(fs::is_empty(t.path + "/outdir"));
}
