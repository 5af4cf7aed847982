// Hugging Face cache snapshots (issue 11, item 4): huggingface_hub stores each
// file once under blobs/ and makes every snapshot a tree of relative symlinks
// into ../../blobs/. df11 reads through links to regular files, writes
// regular files, records the links in the manifest, refuses every other link
// with an error that names the entry, and never writes through a link.
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "df11.h"
#include "sample_model.h"
#include "sha256.h"
#include "test_options.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

Options opts() { return df11test::cpu_options(2); }

// blobs/<sha256> + snapshots/REV/<path> -> ../../blobs/<sha256> (one more
// ../ per subfolder), as huggingface_hub lays out ~/.cache/huggingface/hub/models--X.
struct HfCache {
  df11test::TempDir tmp;
  std::string model, repo, snapshot;
  HfCache() {
    model = tmp.path + "/plain";
    df11test::make_sample_model(model, df11test::tiny_sample());
    repo = tmp.path + "/models--org--tiny";
    snapshot = repo + "/snapshots/0123abcd";
    fs::create_directories(repo + "/blobs");
    for (const auto& e : fs::recursive_directory_iterator(model)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = e.path().lexically_relative(model).generic_string();
      const auto bytes = df11test::read_file(e.path().string());
      Sha256 sha;
      sha.update(bytes.data(), bytes.size());
      const std::string blob = to_hex(sha.digest());
      if (!fs::exists(repo + "/blobs/" + blob)) fs::copy_file(e.path(), repo + "/blobs/" + blob);
      std::string up = "../../";
      for (char c : rel) if (c == '/') up += "../";
      fs::create_directories(fs::path(snapshot + "/" + rel).parent_path());
      fs::create_symlink(up + "blobs/" + blob, snapshot + "/" + rel);
    }
  }
  // Nothing was written anywhere but where the test asked.
  bool no_output(const std::string& out) const {
    if (fs::exists(fs::symlink_status(out))) return false;
    for (const auto& e : fs::directory_iterator(tmp.path))
      if (e.path().filename().string().find("df11tmp") != std::string::npos) return false;
    return true;
  }
};

void expect_refused(const HfCache& c, Error want, const std::string& entry, const std::string& target_word) {
  const std::string out = c.tmp.path + "/out.df11";
  Report r;
  const Status s = compress(c.snapshot, out, opts(), &r);
  INFO(s.message);
  CHECK(error_name(s.code) == std::string(error_name(want)));
  CHECK(exit_code(s.code) == 3);
  // The message names the entry inside the snapshot, not where it points.
  CHECK(s.message.find(c.snapshot + "/" + entry + ":") == 0);
  CHECK(s.message.find(std::string("(") + error_name(want) + ")") != std::string::npos);
  if (!target_word.empty()) CHECK(s.message.find(target_word) == std::string::npos);
  CHECK(c.no_output(out));
}

}  // namespace

TEST_CASE("hf cache: a snapshot of links compresses and restores to byte-identical regular files", "[hfcache]") {
  HfCache c;
  REQUIRE(fs::is_symlink(c.snapshot + "/model.safetensors.index.json"));
  REQUIRE(fs::is_symlink(c.snapshot + "/vision/model.safetensors"));
  const std::string packed = c.tmp.path + "/tiny.df11", restored = c.tmp.path + "/restored";
  Report r;
  Status s = compress(c.snapshot, packed, opts(), &r);
  REQUIRE(s.message == "");
  CHECK(r.files.size() == 10);

  // The output holds regular files only, and the manifest says which inputs were links.
  for (const auto& e : fs::recursive_directory_iterator(packed)) CHECK_FALSE(fs::is_symlink(e.symlink_status()));
  const auto m = nlohmann::json::parse(df11test::read_text(packed + "/df11-manifest.json"));
  REQUIRE(m["files"].size() == 10);
  for (const auto& f : m["files"]) CHECK(f.value("link", false) == true);
  CHECK(fs::is_regular_file(fs::symlink_status(packed + "/vision/model.df11")));

  VerifyReport vr;
  s = verify(packed, c.snapshot, opts(), &vr);  // --against reads through the links too
  INFO(s.message);
  REQUIRE(s.ok());
  CHECK(vr.files_checked == 10);

  s = decompress(packed, restored, opts(), nullptr);
  REQUIRE(s.message == "");
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(c.model)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = e.path().lexically_relative(c.model).generic_string();
    INFO(rel);
    CHECK(fs::is_regular_file(fs::symlink_status(restored + "/" + rel)));
    CHECK(df11test::read_file(restored + "/" + rel) == df11test::read_file(e.path().string()));
    ++files;
  }
  CHECK(files == 10);
  // The blobs are untouched (inputs are only read).
  for (const auto& e : fs::directory_iterator(c.repo + "/blobs")) {
    const auto b = df11test::read_file(e.path().string());
    Sha256 sha;
    sha.update(b.data(), b.size());
    CHECK(to_hex(sha.digest()) == e.path().filename().string());
  }
}

TEST_CASE("hf cache: a compressed model that is itself a snapshot of links decompresses", "[hfcache]") {
  // A df11 model published on the Hub and downloaded with huggingface_hub.
  HfCache c;
  const std::string packed = c.tmp.path + "/tiny.df11";
  REQUIRE(compress(c.model, packed, opts(), nullptr).ok());
  const std::string snap = c.tmp.path + "/models--org--tiny-df11/snapshots/r1";
  const std::string blobs = c.tmp.path + "/models--org--tiny-df11/blobs";
  fs::create_directories(blobs);
  for (const auto& e : fs::recursive_directory_iterator(packed)) {
    const std::string rel = e.path().lexically_relative(packed).generic_string();
    if (e.is_directory()) {
      fs::create_directories(snap + "/" + rel);
      continue;
    }
    const std::string blob = std::to_string(std::hash<std::string>{}(rel));
    fs::copy_file(e.path(), blobs + "/" + blob);
    fs::create_directories(fs::path(snap + "/" + rel).parent_path());
    fs::create_symlink(fs::absolute(blobs + "/" + blob), snap + "/" + rel);
  }
  VerifyReport vr;
  Status s = verify(snap, "", opts(), &vr);
  INFO(s.message);
  REQUIRE(s.ok());
  Report ir;
  REQUIRE(info(snap, opts(), &ir).ok());
  const std::string restored = c.tmp.path + "/restored";
  s = decompress(snap, restored, opts(), nullptr);
  REQUIRE(s.message == "");
  CHECK(df11test::read_file(restored + "/vision/model.safetensors") ==
        df11test::read_file(c.model + "/vision/model.safetensors"));
}

TEST_CASE("hf cache: export --format dfloat11 reads a snapshot through its links", "[hfcache][export]") {
  HfCache c;
  ExportOptions eo;
  eo.threads = 2;
  ExportReport ra, rb;
  const std::string a = c.tmp.path + "/plain-DF11", b = c.tmp.path + "/snap-DF11";
  REQUIRE(export_dfloat11(c.model, a, eo, &ra).message == "");
  const Status s = export_dfloat11(c.snapshot, b, eo, &rb);
  REQUIRE(s.message == "");
  // The same files, byte for byte, all regular.
  std::set<std::string> fa, fb;
  for (const auto& e : fs::recursive_directory_iterator(a)) fa.insert(e.path().lexically_relative(a).generic_string());
  for (const auto& e : fs::recursive_directory_iterator(b)) {
    CHECK_FALSE(fs::is_symlink(e.symlink_status()));
    fb.insert(e.path().lexically_relative(b).generic_string());
  }
  CHECK(fa == fb);
  for (const auto& f : fa) {
    if (fs::is_directory(a + "/" + f)) continue;
    INFO(f);
    CHECK(df11test::read_file(a + "/" + f) == df11test::read_file(b + "/" + f));
  }
  // A dangling link is refused by name, as compress refuses it.
  fs::create_symlink("../../blobs/not-downloaded-yet", c.snapshot + "/extra.json");
  const Status d = export_dfloat11(c.snapshot, c.tmp.path + "/dangling-DF11", eo, &rb);
  CHECK(d.code == Error::DirLinkDangling);
  CHECK(d.message.find("extra.json") != std::string::npos);
  CHECK_FALSE(fs::exists(c.tmp.path + "/dangling-DF11"));
}

TEST_CASE("hf cache: DirLinkDangling", "[hfcache]") {
  HfCache c;
  SECTION("a link to nothing") {
    fs::create_symlink("../../blobs/not-downloaded-yet", c.snapshot + "/pytorch_model.bin");
    expect_refused(c, Error::DirLinkDangling, "pytorch_model.bin", "not-downloaded-yet");
  }
  SECTION("a blob that went missing, in a subfolder") {
    const fs::path target = fs::read_symlink(c.snapshot + "/vision/config.json");
    fs::remove(fs::path(c.snapshot + "/vision") / target);
    expect_refused(c, Error::DirLinkDangling, "vision/config.json", target.filename().string());
  }
  SECTION("a loop") {
    fs::create_symlink("b.json", c.snapshot + "/a.json");
    fs::create_symlink("a.json", c.snapshot + "/b.json");
    expect_refused(c, Error::DirLinkDangling, "a.json", "");
  }
}

TEST_CASE("hf cache: DirLinkToDirectory", "[hfcache]") {
  HfCache c;
  SECTION("a link to a directory inside the snapshot") {
    fs::create_symlink("vision", c.snapshot + "/vision2");
    expect_refused(c, Error::DirLinkToDirectory, "vision2", "");
  }
  SECTION("a link to a directory outside (the blobs)") {
    fs::create_symlink("../../../blobs", c.snapshot + "/vision/blobs");
    expect_refused(c, Error::DirLinkToDirectory, "vision/blobs", "");
  }
  SECTION("a compressed directory whose subfolder is a link: manifest paths would escape through it") {
    const std::string packed = c.tmp.path + "/tiny.df11", elsewhere = c.tmp.path + "/elsewhere";
    REQUIRE(compress(c.model, packed, opts(), nullptr).ok());
    fs::rename(packed + "/vision", elsewhere);
    fs::create_symlink(elsewhere, packed + "/vision");
    const std::string out = c.tmp.path + "/restored";
    Status s = decompress(packed, out, opts(), nullptr);
    INFO(s.message);
    CHECK(s.code == Error::DirLinkToDirectory);
    CHECK(s.message.find(packed + "/vision/") == 0);  // names the entry
    CHECK_FALSE(fs::exists(out));
    VerifyReport vr;
    CHECK(verify(packed, "", opts(), &vr).code == Error::DirLinkToDirectory);
    Report ir;
    CHECK(info(packed, opts(), &ir).code == Error::DirLinkToDirectory);
  }
}

TEST_CASE("hf cache: DirLinkNotRegular", "[hfcache]") {
  HfCache c;
  SECTION("a link to a FIFO") {
    REQUIRE(mkfifo((c.repo + "/blobs/fifo").c_str(), 0600) == 0);
    fs::create_symlink("../../blobs/fifo", c.snapshot + "/fifo.json");
    expect_refused(c, Error::DirLinkNotRegular, "fifo.json", "");  // and it does not block
  }
  SECTION("a link to a character device") {
    fs::create_symlink("/dev/null", c.snapshot + "/vision/null.bin");
    expect_refused(c, Error::DirLinkNotRegular, "vision/null.bin", "/dev/null");
  }
}

TEST_CASE("hf cache: a special file that is not a link is still DirUnsupportedEntry", "[hfcache]") {
  HfCache c;
  REQUIRE(mkfifo((c.model + "/pipe").c_str(), 0600) == 0);
  const std::string out = c.tmp.path + "/out.df11";
  const Status s = compress(c.model, out, opts(), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirUnsupportedEntry);
  CHECK(s.message.find("'pipe'") != std::string::npos);
  CHECK(c.no_output(out));
}

TEST_CASE("hf cache: OutputIsLink, even with overwrite", "[hfcache]") {
  HfCache c;
  const std::string shard = c.model + "/model-00001-of-00002.safetensors";
  const bool overwrite = GENERATE(false, true);
  Options o = opts();
  o.overwrite = overwrite;
  INFO("overwrite " << overwrite);
  {
    SECTION("file output: a link to an existing file is neither written through nor replaced") {
      const std::string victim = c.tmp.path + "/victim", out = c.tmp.path + "/out.df11";
      df11test::write_file(victim, {'v'});
      fs::create_symlink(victim, out);
      const Status s = compress(shard, out, o, nullptr);
      INFO(s.message);
      CHECK(s.code == Error::OutputIsLink);
      CHECK(exit_code(s.code) == 3);
      CHECK(s.message.find(out + ":") == 0);
      CHECK(fs::is_symlink(out));
      CHECK(df11test::read_file(victim) == std::vector<uint8_t>{'v'});
    }
    SECTION("file output: a dangling link is not created through") {
      const std::string out = c.tmp.path + "/restored.safetensors", target = c.tmp.path + "/created";
      REQUIRE(compress(shard, c.tmp.path + "/s.df11", opts(), nullptr).ok());
      fs::create_symlink(target, out);
      CHECK(decompress(c.tmp.path + "/s.df11", out, o, nullptr).code == Error::OutputIsLink);
      CHECK_FALSE(fs::exists(target));
    }
    SECTION("directory output: a link to a directory") {
      const std::string victim = c.tmp.path + "/victim_dir", out = c.tmp.path + "/out.df11";
      fs::create_directories(victim);
      df11test::write_file(victim + "/keep", {'k'});
      fs::create_symlink(victim, out);
      const Status s = compress(c.snapshot, out, o, nullptr);
      INFO(s.message);
      CHECK(s.code == Error::OutputIsLink);
      CHECK(fs::is_symlink(out));
      CHECK(fs::directory_iterator(victim)->path().filename() == "keep");
      CHECK(std::distance(fs::directory_iterator(victim), fs::directory_iterator()) == 1);
    }
  }
}

TEST_CASE("hf cache: manifests without the link key stay readable, a non-boolean one is DirManifestInvalid", "[hfcache]") {
  HfCache c;
  const std::string packed = c.tmp.path + "/tiny.df11";
  REQUIRE(compress(c.model, packed, opts(), nullptr).ok());
  const std::string text = df11test::read_text(packed + "/df11-manifest.json");
  // A plain directory writes no "link" key at all: the manifest is the same as before the key existed.
  CHECK(text.find("\"link\"") == std::string::npos);
  VerifyReport vr;
  REQUIRE(verify(packed, "", opts(), &vr).ok());

  auto m = nlohmann::json::parse(text);
  m["files"][0]["link"] = "yes";
  {
    std::ofstream f(packed + "/df11-manifest.json", std::ios::trunc);
    f << m.dump();
  }
  const Status s = decompress(packed, c.tmp.path + "/r", opts(), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirManifestInvalid);
  CHECK(s.message.find("link") != std::string::npos);
}

TEST_CASE("hf cache: the CLI asks for -o rather than write its default output into the cache", "[hfcache][cli]") {
  HfCache c;
  // huggingface_hub would take snapshots/0123abcd.df11 for another revision.
  auto r = df11test::run_df11("compress models--org--tiny/snapshots/0123abcd/", c.tmp.path);
  CHECK(r.code == 2);
  CHECK(r.err.find("is in the Hugging Face cache, where the default output") != std::string::npos);
  CHECK(r.err.find("name it with -o OUT (Usage)") != std::string::npos);
  r = df11test::run_df11("compress models--org--tiny/snapshots/0123abcd/vision/model.safetensors", c.tmp.path);
  CHECK(r.code == 2);
  // Nothing was written into the cache.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(c.repo + "/snapshots")) entries += e.path().filename() == "0123abcd" ? 0 : 1;
  CHECK(entries == 0);
  CHECK_FALSE(fs::exists(c.snapshot + "/vision/model.df11"));
  // With -o, as anywhere; and a df11 model stored in the cache is restored the same way.
  r = df11test::run_df11("compress models--org--tiny/snapshots/0123abcd -o tiny.df11", c.tmp.path);
  CHECK(r.code == 0);
  fs::create_directories(c.tmp.path + "/models--org--packed/snapshots");
  fs::rename(c.tmp.path + "/tiny.df11", c.tmp.path + "/models--org--packed/snapshots/rev");
  r = df11test::run_df11("decompress models--org--packed/snapshots/rev", c.tmp.path);
  CHECK(r.code == 2);
  r = df11test::run_df11("decompress models--org--packed/snapshots/rev -o restored", c.tmp.path);
  CHECK(r.code == 0);
  // Outside a cache the default stays (DIR.df11 beside DIR).
  r = df11test::run_df11("compress plain", c.tmp.path);
  CHECK(r.code == 0);
  CHECK(fs::is_directory(c.tmp.path + "/plain.df11"));
}
