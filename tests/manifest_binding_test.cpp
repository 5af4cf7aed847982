// The manifest's original_xxh64 (docs/FORMAT.md §7) ties each .df11 to its
// entry. Decompress checks the tie from the container's header and trusts
// the container's own checksums for the bytes, leaving the SHA-256 to verify;
// a manifest without the key (written before it existed) is checked by
// SHA-256 as before.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "df11.h"
#include "file_digest.h"
#include "sample_model.h"
#include "test_options.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

Options opts(unsigned threads = 2) { return df11test::cpu_options(threads); }

struct Packed {
  df11test::TempDir tmp;
  std::string model = tmp.path + "/model", packed = tmp.path + "/model.df11", manifest = packed + "/df11-manifest.json";
  Packed() {
    df11test::make_sample_model(model, df11test::tiny_sample());
    REQUIRE(compress(model, packed, opts(), nullptr).ok());
  }
  nlohmann::json read() const { return nlohmann::json::parse(df11test::read_text(manifest)); }
  void write(const nlohmann::json& j) const {
    std::ofstream f(manifest, std::ios::trunc);
    f << j.dump(1);
  }
  // Index of the first .df11 entry in the manifest.
  size_t first_df11() const {
    const auto j = read();
    for (size_t i = 0; i < j["files"].size(); ++i)
      if (j["files"][i]["stored_as"] != j["files"][i]["path"]) return i;
    FAIL("no .df11 entry");
    return 0;
  }
};

std::string flip_hex(std::string h) {
  h[0] = h[0] == '0' ? '1' : '0';
  return h;
}

}  // namespace

TEST_CASE("manifest binding: every .df11 entry records its container's original_xxh64, copies none", "[manifest]") {
  Packed p;
  size_t bound = 0;
  const auto j = p.read();
  for (const auto& f : j["files"]) {
    const std::string path = f["path"], stored = f["stored_as"];
    INFO(path);
    if (stored == path) {
      CHECK_FALSE(f.contains("original_xxh64"));
      continue;
    }
    REQUIRE(f.contains("original_xxh64"));
    std::unique_ptr<Reader> r;
    REQUIRE(Reader::open(p.packed + "/" + stored, &r).ok());
    CHECK(f["original_xxh64"] == digest_hex(r->original_xxh64()));
    CHECK(f["size"] == r->original_size());
    ++bound;
  }
  CHECK(bound == 3);  // two shards and vision/model
}

TEST_CASE("manifest binding: a container that is not the entry's is refused before anything is written",
          "[manifest]") {
  Packed p;
  const size_t i = p.first_df11();
  auto j = p.read();
  const std::string stored = j["files"][i]["stored_as"];
  const std::string back = p.tmp.path + "/back";
  SECTION("another original_xxh64") { j["files"][i]["original_xxh64"] = flip_hex(j["files"][i]["original_xxh64"]); }
  SECTION("another size") { j["files"][i]["size"] = j["files"][i]["size"].get<uint64_t>() + 1; }
  SECTION("another size, in a manifest from before original_xxh64") {  // the size is tied in every manifest
    j["files"][i].erase("original_xxh64");
    j["files"][i]["size"] = j["files"][i]["size"].get<uint64_t>() - 1;
  }
  p.write(j);
  // A byte of the container's last payload flipped as well: had anything been
  // decoded first, the error would be a checksum's, not the tie's.
  {
    auto bytes = df11test::read_file(p.packed + "/" + stored);
    std::unique_ptr<Reader> r;
    REQUIRE(Reader::open(p.packed + "/" + stored, &r).ok());
    const ReaderTensor& last = r->tensors().back();
    const uint64_t at = static_cast<uint64_t>(last.payload - r->tensors().front().payload) + 128;
    REQUIRE(r->tensors().front().payload_size > 0);
    bytes[at + last.payload_size - 1] ^= 0x01;
    df11test::write_file(p.packed + "/" + stored, bytes);
  }
  for (unsigned t : {1u, 4u}) {
    const Status s = decompress(p.packed, back, opts(t), nullptr);
    INFO(s.message);
    CHECK(s.code == Error::VerifyMismatch);
    CHECK(s.message.find(stored) != std::string::npos);
    CHECK(s.message.find("not the manifest's file") != std::string::npos);
    CHECK_FALSE(fs::exists(back));
  }
  VerifyReport vr;
  CHECK(verify(p.packed, "", opts(), &vr).code == Error::VerifyMismatch);
  bool named = false;
  for (const auto& f : vr.failures) named = named || f.find("not the manifest's file") != std::string::npos;
  CHECK(named);
}

TEST_CASE("manifest binding: two valid shards swapped are caught by decompress and verify", "[manifest]") {
  Packed p;
  const std::string a = p.packed + "/model-00001-of-00002.df11", b = p.packed + "/model-00002-of-00002.df11";
  fs::rename(a, p.tmp.path + "/x");
  fs::rename(b, a);
  fs::rename(p.tmp.path + "/x", b);
  const Status s = decompress(p.packed, p.tmp.path + "/back", opts(4), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::VerifyMismatch);
  CHECK_FALSE(fs::exists(p.tmp.path + "/back"));
  VerifyReport vr;
  CHECK(verify(p.packed, "", opts(), &vr).code == Error::VerifyMismatch);
}

TEST_CASE("manifest binding: decompress leaves the SHA-256 to verify; without the key it checks the SHA-256",
          "[manifest]") {
  Packed p;
  const size_t i = p.first_df11();
  auto j = p.read();
  const std::string path = j["files"][i]["path"], sha = j["files"][i]["sha256"];
  j["files"][i]["sha256"] = flip_hex(sha);
  const std::string back = p.tmp.path + "/back";
  SECTION("with original_xxh64: decompress restores (the bytes are proven by the container), verify names the SHA-256") {
    p.write(j);
    REQUIRE(decompress(p.packed, back, opts(), nullptr).ok());
    CHECK(df11test::read_text(back + "/" + path) == df11test::read_text(p.model + "/" + path));
    VerifyReport vr;
    CHECK(verify(p.packed, "", opts(), &vr).code == Error::VerifyMismatch);
    REQUIRE(vr.failures.size() == 1);
    CHECK(vr.failures[0] == path + ": SHA-256 differs from the manifest");
  }
  SECTION("an older manifest without the key: decompress checks the SHA-256 as before") {
    for (auto& f : j["files"]) f.erase("original_xxh64");
    p.write(j);
    const Status s = decompress(p.packed, back, opts(), nullptr);
    INFO(s.message);
    CHECK(s.code == Error::VerifyMismatch);
    CHECK(s.message.find("SHA-256") != std::string::npos);
    CHECK_FALSE(fs::exists(back));
  }
  SECTION("an older manifest without the key, intact: restores byte-identically") {
    j["files"][i]["sha256"] = sha;
    for (auto& f : j["files"]) f.erase("original_xxh64");
    p.write(j);
    REQUIRE(decompress(p.packed, back, opts(4), nullptr).ok());
    CHECK(df11test::read_text(back + "/" + path) == df11test::read_text(p.model + "/" + path));
  }
}

TEST_CASE("manifest binding: a malformed original_xxh64 is DirManifestInvalid", "[manifest]") {
  Packed p;
  const size_t i = p.first_df11();
  auto j = p.read();
  size_t copied = 0;
  while (j["files"][copied]["stored_as"] != j["files"][copied]["path"]) ++copied;
  SECTION("not a string") { j["files"][i]["original_xxh64"] = 12345; }
  SECTION("too short") { j["files"][i]["original_xxh64"] = "0123456789abcde"; }
  SECTION("upper case") { j["files"][i]["original_xxh64"] = "0123456789ABCDEF"; }
  SECTION("on a copied file") { j["files"][copied]["original_xxh64"] = "0123456789abcdef"; }
  p.write(j);
  const Status s = decompress(p.packed, p.tmp.path + "/back", opts(), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirManifestInvalid);
  CHECK(s.message.find("original_xxh64") != std::string::npos);
  VerifyReport vr;
  CHECK(verify(p.packed, "", opts(), &vr).code == Error::DirManifestInvalid);
}

TEST_CASE("manifest binding: a path or stored file listed twice is DirManifestInvalid", "[manifest]") {
  Packed p;
  auto j = p.read();
  size_t copied = 0;
  while (j["files"][copied]["stored_as"] != j["files"][copied]["path"]) ++copied;
  std::string what;
  SECTION("the same entry twice") {
    j["files"].push_back(j["files"][copied]);
    what = "twice";
  }
  SECTION("two paths stored as one file") {
    auto e = j["files"][copied];
    e["path"] = "other-name.json";
    j["files"].push_back(e);
    what = "stored file";
  }
  p.write(j);
  const Status s = decompress(p.packed, p.tmp.path + "/back", opts(), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirManifestInvalid);
  CHECK(s.message.find(what) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(p.tmp.path + "/back"));
  VerifyReport vr;
  CHECK(verify(p.packed, "", opts(), &vr).code == Error::DirManifestInvalid);
}
