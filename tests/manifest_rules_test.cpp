// The manifest's own rules (docs/FORMAT.md section 7): its shape, and the
// paths it may name. A reader trusts nothing in it: a path that climbs out of
// the directory, or a manifest that is not one, is refused before anything
// is written. (Its tie to each container: manifest_binding_test.cpp.)
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "df11.h"
#include "sample_model.h"
#include "test_options.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

struct Packed {
  df11test::TempDir tmp;
  std::string model = tmp.path + "/model", packed = tmp.path + "/model.df11", manifest = packed + "/df11-manifest.json",
              back = tmp.path + "/back";
  Packed() {
    df11test::make_sample_model(model, df11test::tiny_sample());
    REQUIRE(compress(model, packed, df11test::cpu_options(2), nullptr).ok());
  }
  nlohmann::json read() const { return nlohmann::json::parse(df11test::read_text(manifest)); }
  void write_text(const std::string& text) const {
    std::ofstream f(manifest, std::ios::trunc | std::ios::binary);
    f << text;
  }
  void write(const nlohmann::json& j) const { write_text(j.dump(1)); }
  // Index of the first entry that is (or is not) a copied file.
  size_t first(bool copied) const {
    const auto j = read();
    for (size_t i = 0; i < j["files"].size(); ++i)
      if ((j["files"][i]["stored_as"] == j["files"][i]["path"]) == copied) return i;
    FAIL("no such entry");
    return 0;
  }
  // decompress and verify both refuse with `code`; decompress writes nothing.
  void expect_refused(Error code, const std::string& in_message) const {
    const Status s = decompress(packed, back, df11test::cpu_options(2), nullptr);
    INFO(s.message);
    CHECK(s.code == code);
    CHECK(s.message.find(in_message) != std::string::npos);
    CHECK(s.message.find('\n') == std::string::npos);
    CHECK_FALSE(fs::exists(back));
    CHECK(df11test::temporaries_in(tmp.path).empty());
    VerifyReport vr;
    CHECK(verify(packed, "", df11test::cpu_options(2), &vr).code == code);
  }
};

}  // namespace

TEST_CASE("manifest rules: an unsafe path, stored file or directory is DirManifestInvalid", "[manifest]") {
  const std::string unsafe[] = {
      "/etc/passwd-df11",  // absolute
      "../escape.json",    // climbs out
      "sub/../../escape.json",
      "sub//x.json",  // empty component
      "./x.json",
      "x.json/",  // trailing empty component
      "",
      "sub\\x.json",                  // backslash
      std::string("x\0y.json", 8),  // NUL
  };
  for (const std::string& bad : unsafe) {
    for (const char* where : {"path", "stored_as", "directories"}) {
      std::string shown = bad;  // the NUL printed as \0
      if (const size_t z = shown.find('\0'); z != std::string::npos) shown.replace(z, 1, "\\0");
      DYNAMIC_SECTION("'" << shown << "' as " << where) {
        Packed p;
        auto j = p.read();
        if (std::string(where) == "directories") {
          j["directories"].push_back(bad);
        } else {
          // A copied entry keeps path == stored_as apart from the one
          // changed, so the change alone decides.
          j["files"][p.first(true)][where] = bad;
        }
        p.write(j);
        p.expect_refused(Error::DirManifestInvalid, "unsafe");
        CHECK_FALSE(fs::exists(p.tmp.path + "/escape.json"));
      }
    }
  }
}

TEST_CASE("manifest rules: a manifest that is not one is DirManifestInvalid; another version is Df11UnsupportedVersion",
          "[manifest]") {
  Packed p;
  auto j = p.read();
  const size_t df = p.first(false);
  Error code = Error::DirManifestInvalid;
  std::string text;
  SECTION("not JSON") { text = "{\"format\": \"df11-manifest\", "; }
  SECTION("empty") { text = " "; }
  SECTION("an array") { text = "[]"; }
  SECTION("no format") { j.erase("format"); }
  SECTION("another format") { j["format"] = "df11-manifest-2"; }
  SECTION("a format that is a number") { j["format"] = 5; }  // was: an exception through the library (Internal)
  SECTION("a format that is null") { j["format"] = nullptr; }
  SECTION("no files") { j.erase("files"); }
  SECTION("files not an array") { j["files"] = nlohmann::json::object(); }
  SECTION("an entry not an object") { j["files"].push_back("model.safetensors"); }
  SECTION("an entry without sha256") { j["files"][df].erase("sha256"); }
  SECTION("an entry without stored_as") { j["files"][df].erase("stored_as"); }
  SECTION("a negative size") { j["files"][df]["size"] = -1; }
  SECTION("a size that is a string") { j["files"][df]["size"] = "123"; }
  SECTION("a sha256 in upper case") {
    std::string h = j["files"][df]["sha256"];
    for (char& c : h) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    h[0] = 'A';  // at least one letter
    j["files"][df]["sha256"] = h;
  }
  SECTION("a short sha256") { j["files"][df]["sha256"] = std::string(63, 'a'); }
  SECTION("directories not an array") { j["directories"] = "sub"; }
  SECTION("a directory that is not a string") { j["directories"].push_back(1); }
  SECTION("version 2") {
    j["version"] = 2;
    code = Error::Df11UnsupportedVersion;
  }
  SECTION("no version") {
    j.erase("version");
    code = Error::Df11UnsupportedVersion;
  }
  if (text.empty()) {
    p.write(j);
  } else {
    p.write_text(text);
  }
  p.expect_refused(code, "df11-manifest.json");
}

TEST_CASE("manifest rules: the CLI reports a bad manifest on one line, exit 3, nothing written", "[manifest][cli]") {
  Packed p;
  auto j = p.read();
  j["files"][p.first(true)]["path"] = "../escape.json";
  p.write(j);
  const df11test::CliRun r = df11test::run_df11("decompress model.df11 -o back", p.tmp.path);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("DirManifestInvalid") != std::string::npos);
  CHECK(r.err.find("model.df11/df11-manifest.json") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(p.back));
  CHECK_FALSE(fs::exists(p.tmp.path + "/escape.json"));
}

namespace {

// Drops the manifest entry for `path` (and, with `and_file`, its stored file).
void drop_entry(const Packed& p, const std::string& path, bool and_file) {
  auto j = p.read();
  nlohmann::json kept = nlohmann::json::array();
  std::string stored;
  for (const auto& f : j["files"]) {
    if (f["path"] == path) {
      stored = f["stored_as"];
    } else {
      kept.push_back(f);
    }
  }
  REQUIRE_FALSE(stored.empty());
  j["files"] = kept;
  p.write(j);
  if (and_file) REQUIRE(fs::remove(p.packed + "/" + stored));
}

VerifyReport verify_report(const Packed& p) {
  VerifyReport vr;
  const Status s = verify(p.packed, "", df11test::cpu_options(2), &vr);
  INFO(s.message);
  CHECK((s.ok() == vr.failures.empty()));  // problems are failures of the report: VerifyMismatch, exit 1
  if (!s.ok()) CHECK(s.code == Error::VerifyMismatch);
  return vr;
}

bool mentions(const std::vector<std::string>& failures, const std::string& a, const std::string& b) {
  for (const auto& f : failures)
    if (f.find(a) != std::string::npos && f.find(b) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("manifest rules: a container the manifest does not list is refused, not silently dropped", "[manifest]") {
  Packed p;
  const std::string shard2 = "model-00002-of-00002";
  bool index_listed = true;
  SECTION("one entry dropped") { drop_entry(p, shard2 + ".safetensors", false); }
  SECTION("every entry dropped") {
    index_listed = false;
    auto j = p.read();
    j["files"] = nlohmann::json::array();
    p.write(j);
  }
  const Status s = decompress(p.packed, p.back, df11test::cpu_options(2), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::VerifyMismatch);
  CHECK(s.message.find("does not list") != std::string::npos);
  CHECK(s.message.find(".df11") != std::string::npos);
  CHECK_FALSE(fs::exists(p.back));
  CHECK(df11test::temporaries_in(p.tmp.path).empty());
  const VerifyReport vr = verify_report(p);
  CHECK(mentions(vr.failures, p.packed + "/" + shard2 + ".df11", "does not list"));
  // The index, still listed, names the shard that the manifest lost.
  if (index_listed) CHECK(mentions(vr.failures, "model.safetensors.index.json", "'" + shard2 + ".safetensors'"));
}

TEST_CASE("manifest rules: a shard that an index names and the manifest lacks is DirIndexMissingShard", "[manifest]") {
  Packed p;
  drop_entry(p, "model-00002-of-00002.safetensors", true);  // entry and container both gone
  const Status s = decompress(p.packed, p.back, df11test::cpu_options(2), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirIndexMissingShard);
  CHECK(s.message.find(p.packed + "/model.safetensors.index.json: weight_map names shard "
                                  "'model-00002-of-00002.safetensors', which the manifest does not list") == 0);
  CHECK_FALSE(fs::exists(p.back));
  const VerifyReport vr = verify_report(p);
  REQUIRE(vr.failures.size() == 1);
  CHECK(vr.failures[0] == s.message);
}

TEST_CASE("manifest rules: files a model hub adds beside the manifest are left alone", "[manifest]") {
  Packed p;
  df11test::write_file(p.packed + "/.gitattributes", {'*', '\n'});
  df11test::write_file(p.packed + "/MODEL_CARD.md", {'#', '\n'});  // (README.md is the model's own here)
  REQUIRE(decompress(p.packed, p.back, df11test::cpu_options(2), nullptr).ok());
  CHECK_FALSE(fs::exists(p.back + "/.gitattributes"));
  CHECK(verify_report(p).failures.empty());
}

TEST_CASE("manifest rules: a path listed as a file and a directory, or inside a file, is DirManifestInvalid",
          "[manifest]") {
  Packed p;
  auto j = p.read();
  SECTION("a file also listed as a directory") { j["directories"].push_back("config.json"); }
  SECTION("a directory inside a file") { j["directories"].push_back("config.json/sub"); }
  SECTION("a file inside a file") {
    auto e = j["files"][p.first(true)];
    e["path"] = e["stored_as"] = "config.json/inner.json";
    j["files"].push_back(e);
  }
  p.write(j);
  p.expect_refused(Error::DirManifestInvalid, "config.json");
}

TEST_CASE("manifest rules: a special file in place of a stored file is DirUnsupportedEntry, as when compressing",
          "[manifest]") {
  Packed p;
  const auto j = p.read();
  const std::string copied = j["files"][p.first(true)]["stored_as"];
  REQUIRE(fs::remove(p.packed + "/" + copied));
  REQUIRE(::mkfifo((p.packed + "/" + copied).c_str(), 0600) == 0);
  const Status s = decompress(p.packed, p.back, df11test::cpu_options(2), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirUnsupportedEntry);
  CHECK(s.message.find(p.packed + "/" + copied + ": is a special file") == 0);
  CHECK_FALSE(fs::exists(p.back));
  VerifyReport vr;
  CHECK(verify(p.packed, "", df11test::cpu_options(2), &vr).code == Error::DirUnsupportedEntry);
  Report ir;
  CHECK(info(p.packed, df11test::cpu_options(2), &ir).code == Error::DirUnsupportedEntry);  // was: exit 0
}
