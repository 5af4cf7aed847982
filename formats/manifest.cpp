#include "manifest.h"

#include <cstdlib>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "file_digest.h"
#include "file_io.h"
#include "input_entry.h"
#include "model_index.h"
#include "ops.h"

namespace df11 {

namespace fs = std::filesystem;

bool safe_relative_path(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.find('\\') != std::string::npos || p.find('\0') != std::string::npos)
    return false;
  size_t start = 0;
  while (true) {
    const size_t slash = p.find('/', start);
    const std::string part = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string container_mismatch(const Reader& r, const ManifestEntry& e) {
  // The size is tied in every manifest; original_xxh64 only where written
  // (manifests from before the key lack it).
  if (r.original_size() != e.size)
    return "not the manifest's file: restores " + std::to_string(r.original_size()) + " bytes, manifest says " +
           std::to_string(e.size);
  if (!e.original_xxh64) return "";
  if (r.original_xxh64() != *e.original_xxh64)
    return "not the manifest's file: original_xxh64 is " + digest_hex(r.original_xxh64()) + ", manifest says " +
           digest_hex(*e.original_xxh64);
  return "";
}

Status check_container(const Reader& r, const ManifestEntry& e, const std::string& path) {
  const std::string why = container_mismatch(r, e);
  return why.empty() ? Status::Ok() : make_status(Error::VerifyMismatch, path, why);
}

std::string manifest_to_json(const Manifest& m) {
  nlohmann::ordered_json j;
  j["format"] = "df11-manifest";
  j["version"] = 1;
  j["directories"] = m.directories;
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& f : m.files) {
    nlohmann::ordered_json e = {{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}};
    if (f.original_xxh64) e["original_xxh64"] = digest_hex(*f.original_xxh64);
    e["stored_as"] = f.stored_as;
    // Written only when true, so a directory without links gives the same
    // manifest as before the key existed.
    if (f.link) e["link"] = true;
    j["files"].push_back(std::move(e));
  }
  return j.dump(1) + "\n";
}

Status manifest_from_json(const std::string& text, const std::string& label, Manifest* out) {
  auto bad = [&](const std::string& what) { return make_status(Error::DirManifestInvalid, label, what); };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != "df11-manifest")
    return bad("format is not \"df11-manifest\"");
  if (!j.contains("version") || !j["version"].is_number_unsigned() || j["version"].get<uint64_t>() != 1)
    return make_status(Error::Df11UnsupportedVersion, label, "unsupported manifest version");
  if (!j.contains("files") || !j["files"].is_array()) return bad("missing \"files\" array");
  Manifest m;
  if (j.contains("directories")) {
    if (!j["directories"].is_array()) return bad("\"directories\" is not an array");
    for (const auto& d : j["directories"]) {
      if (!d.is_string()) return bad("a \"directories\" entry is not a string");
      if (!safe_relative_path(d.get<std::string>())) return bad("unsafe directory path '" + d.get<std::string>() + "'");
      m.directories.push_back(d.get<std::string>());
    }
  }
  std::set<std::string> paths, stored;
  for (const auto& f : j["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("stored_as") ||
        !f["stored_as"].is_string() || !f.contains("size") || !f["size"].is_number_unsigned() ||
        !f.contains("sha256") || !f["sha256"].is_string())
      return bad("file entry lacks path, size, sha256 or stored_as");
    ManifestEntry e{f["path"].get<std::string>(), f["size"].get<uint64_t>(), f["sha256"].get<std::string>(),
                    f["stored_as"].get<std::string>(), false, std::nullopt};
    if (f.contains("link")) {  // optional: manifests written before it was added lack it
      if (!f["link"].is_boolean()) return bad("\"link\" of '" + e.path + "' is not a boolean");
      e.link = f["link"].get<bool>();
    }
    if (f.contains("original_xxh64")) {  // optional: manifests written before it was added lack it
      const auto& x = f["original_xxh64"];
      if (!x.is_string() || x.get<std::string>().size() != 16 ||
          x.get<std::string>().find_first_not_of("0123456789abcdef") != std::string::npos)
        return bad("bad original_xxh64 for '" + e.path + "'");
      if (e.stored_as == e.path) return bad("original_xxh64 of '" + e.path + "', a copied file");
      e.original_xxh64 = std::strtoull(x.get<std::string>().c_str(), nullptr, 16);
    }
    if (!safe_relative_path(e.path) || !safe_relative_path(e.stored_as))
      return bad("unsafe path '" + e.path + "' / '" + e.stored_as + "'");
    if (e.sha256.size() != 64 || e.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
      return bad("bad sha256 for '" + e.path + "'");
    // Two entries with one path (or one stored file) would write, or read,
    // the same file twice.
    if (!paths.insert(e.path).second) return bad("lists the path '" + e.path + "' twice");
    if (!stored.insert(e.stored_as).second) return bad("lists the stored file '" + e.stored_as + "' twice");
    m.files.push_back(std::move(e));
  }
  // The restored tree must be possible: no path both a file and a directory,
  // none inside a file (decompress would fail half-way, a directory where a
  // file goes).
  const std::set<std::string> as_dir(m.directories.begin(), m.directories.end());
  for (const auto& e : m.files)
    if (as_dir.count(e.path)) return bad("lists '" + e.path + "' as a file and as a directory");
  std::vector<const std::string*> all;
  for (const auto& e : m.files) all.push_back(&e.path);
  for (const auto& d : m.directories) all.push_back(&d);
  for (const std::string* p : all)
    for (size_t k = p->find('/'); k != std::string::npos; k = p->find('/', k + 1))
      if (paths.count(p->substr(0, k)))
        return bad("lists '" + *p + "' inside '" + p->substr(0, k) + "', which it lists as a file");
  *out = std::move(m);
  return Status::Ok();
}

Status check_manifest_coverage(const std::string& in, const Manifest& m, std::vector<Status>* problems) {
  if (!problems) {
    std::vector<Status> found;
    const Status s = check_manifest_coverage(in, m, &found);
    return !s.ok() || found.empty() ? s : found.front();
  }
  std::set<std::string> stored, paths;
  for (const auto& e : m.files) {
    stored.insert(e.stored_as);
    paths.insert(e.path);
  }
  std::error_code ec;
  for (fs::recursive_directory_iterator it(in, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!ends_with(it->path().filename().string(), ".df11")) continue;
    std::error_code tec;
    if (it->symlink_status(tec).type() == fs::file_type::directory) continue;
    const std::string rel = it->path().lexically_relative(in).generic_string();
    if (!stored.count(rel))
      problems->push_back(make_status(Error::VerifyMismatch, in + "/" + rel,
                                      "a container that the manifest does not list; it would not be restored"));
  }
  if (ec) return make_status(Error::Io, in, "cannot list the directory: " + ec.message());
  for (const auto& e : m.files) {
    if (e.stored_as != e.path || !ends_with(e.path, ".safetensors.index.json")) continue;
    const fs::path rel(e.path);
    const std::string folder = rel.has_parent_path() ? rel.parent_path().generic_string() + "/" : "";
    std::vector<std::string> shards;
    const Status s = read_index_shards(in + "/" + folder, rel.filename().string(), &shards);
    if (!s.ok()) {
      problems->push_back(s);
      continue;
    }
    for (const auto& shard : shards)
      if (!paths.count(folder + shard))
        problems->push_back(make_status(Error::DirIndexMissingShard, in + "/" + e.path,
                                        "weight_map names shard '" + shard + "', which the manifest does not list"));
  }
  return Status::Ok();
}

Status read_manifest(const std::string& dir, Manifest* m) {
  const std::string path = dir + "/" + kManifestName;
  std::error_code ec;
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec))) {  // e.g. a df11 model in the Hugging Face cache
    Status s = check_input_file(dir, kManifestName);
    if (!s.ok()) return s;
  }
  // read_regular_file: a FIFO in its place is refused, not waited on.
  std::string text, why;
  if (!read_regular_file(path, &text, &why))
    return make_status(Error::Io, dir, std::string("not a df11 directory: cannot read ") + kManifestName + " (" + why + ")");
  return manifest_from_json(text, path, m);
}

}  // namespace df11
