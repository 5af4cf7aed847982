#include "input_entry.h"

#include <algorithm>
#include <filesystem>

#include "file_io.h"
#include "manifest.h"
#include "safetensors_header.h"

namespace df11 {

namespace fs = std::filesystem;

Status classify_input_entry(const std::string& root, const std::string& rel, InputEntry* out) {
  const fs::path p = fs::path(root) / rel;
  const std::string label = p.string();
  std::error_code ec;
  const fs::file_status own = fs::symlink_status(p, ec);
  if (ec) return make_status(Error::Io, label, "cannot examine: " + ec.message());
  *out = InputEntry{};
  if (!fs::is_symlink(own)) {
    out->kind = fs::is_regular_file(own) ? EntryKind::RegularFile
                : fs::is_directory(own)  ? EntryKind::Directory
                                         : EntryKind::Other;
    return Status::Ok();
  }
  out->link = true;
  const fs::file_status target = fs::status(p, ec);  // follows the whole chain
  if (ec || !fs::exists(target)) {
    // ENOENT (dangling) and ELOOP (a cycle) alike: the link leads to no file.
    return make_status(Error::DirLinkDangling, label,
                       "symbolic link does not resolve to a file" + (ec ? " (" + ec.message() + ")" : std::string()));
  }
  if (fs::is_directory(target))
    return make_status(Error::DirLinkToDirectory, label, "symbolic link to a directory (links are followed only to regular files)");
  if (!fs::is_regular_file(target))
    return make_status(Error::DirLinkNotRegular, label, "symbolic link to a device, FIFO or socket, not a regular file");
  out->kind = EntryKind::RegularFile;
  return Status::Ok();
}

Status check_input_file(const std::string& root, const std::string& rel) {
  // Walk the directories on the way first: a link among them is refused even
  // when it resolves to a directory that holds the file.
  std::string prefix;
  size_t start = 0;
  for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', start)) {
    prefix = rel.substr(0, slash);
    start = slash + 1;
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(fs::path(root) / prefix, ec);
    if (fs::is_symlink(st))
      return make_status(Error::DirLinkToDirectory, (fs::path(root) / rel).string(),
                         "path goes through the symbolic link '" + prefix + "' (links are followed only to regular files)");
  }
  InputEntry e;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(fs::path(root) / rel, ec)))
    return make_status(Error::Io, (fs::path(root) / rel).string(), "no such file");
  Status s = classify_input_entry(root, rel, &e);
  if (!s.ok()) return s;
  if (e.kind == EntryKind::Other)  // a FIFO, device or socket, as when compressing
    return make_status(Error::DirUnsupportedEntry, (fs::path(root) / rel).string(),
                       "is a special file (FIFO, device or socket), not a regular file");
  if (e.kind != EntryKind::RegularFile)
    return make_status(Error::Io, (fs::path(root) / rel).string(), "not a regular file");
  return Status::Ok();
}

// Lists regular files and directories under root, sorted. A symlink to a
// regular file counts as a file (a Hugging Face cache snapshot is made of
// links into ../../blobs/) and is added to *links; any other link, and any
// special file, fails with an error naming the entry.
Status scan_dir(const std::string& root, std::vector<std::string>* files, std::vector<std::string>* dirs,
                std::set<std::string>* links) {
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return make_status(Error::Io, root, "cannot read directory: " + ec.message());
  while (it != end) {
    // Lexically: fs::relative() would resolve the links this scan examines.
    const std::string rel = it->path().lexically_relative(root).generic_string();
    Status s = check_entry_name(root, rel);
    if (!s.ok()) return s;
    InputEntry e;
    s = classify_input_entry(root, rel, &e);
    if (!s.ok()) return s;
    if (e.kind == EntryKind::Directory) {
      dirs->push_back(rel);
    } else if (e.kind == EntryKind::RegularFile) {
      files->push_back(rel);
      if (e.link) links->insert(rel);
    } else {
      return make_status(Error::DirUnsupportedEntry, root, "'" + rel + "' is not a regular file or directory");
    }
    // An unreadable subdirectory sets ec and turns the iterator into end at
    // once, so ec is checked here, not by the loop's condition: checked there,
    // the scan would end early and silently leave files out.
    it.increment(ec);
    if (ec) {
      const std::string where = e.kind == EntryKind::Directory ? (fs::path(root) / rel).string() : root;
      return make_status(Error::Io, where, "cannot read directory: " + ec.message());
    }
  }
  std::sort(files->begin(), files->end());
  std::sort(dirs->begin(), dirs->end());
  return Status::Ok();
}

Status check_entry_name(const std::string& root, const std::string& rel) {
  const auto* p = reinterpret_cast<const uint8_t*>(rel.data());
  if (!is_valid_utf8(p, rel.size()))
    return make_status(Error::DirUnsupportedName, (fs::path(root) / rel).string(),
                       "name is not valid UTF-8; a manifest (JSON) cannot record it");
  if (!safe_relative_path(rel))
    return make_status(Error::DirUnsupportedName, (fs::path(root) / rel).string(),
                       "name holds a backslash or another character a manifest path may not hold");
  return Status::Ok();
}

}  // namespace df11
