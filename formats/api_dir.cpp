// Public entry points: dispatch between single files and model directories.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "file_io.h"
#include "input_entry.h"
#include "manifest.h"
#include "model_index.h"
#include "ops.h"

namespace df11 {

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A directory built under a temporary name beside its destination and renamed
// into place by commit(); removed with everything in it otherwise.
class AtomicOutputDir {
 public:
  ~AtomicOutputDir() {
    std::error_code ec;
    if (!temp_.empty()) fs::remove_all(temp_, ec);
  }
  Status open(const std::string& path, bool overwrite) {
    path_ = path;
    overwrite_ = overwrite;
    if (Status s = refuse_output_link(path); !s.ok()) return s;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(path, ec)) && !overwrite)
      return make_status(Error::OutputExists, path, "output exists (use -f to overwrite)");
    const fs::path p = fs::absolute(path, ec);
    std::string tmpl = (p.parent_path() / ("." + p.filename().string() + ".df11tmp-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) return make_status(Error::Io, path, std::string("cannot create output directory: ") + std::strerror(errno));
    temp_ = tmpl;
    return Status::Ok();
  }
  const std::string& temp() const { return temp_; }
  Status commit() {
    if (interrupted()) return interrupted_status(path_);
    if (Status s = refuse_output_link(path_); !s.ok()) return s;
    std::error_code ec;
    const bool exists = fs::exists(fs::symlink_status(path_, ec));
    if (exists && !overwrite_) return make_status(Error::OutputExists, path_, "output exists (use -f to overwrite)");
    std::string old;
    if (exists) {
      old = temp_ + ".old";
      fs::rename(path_, old, ec);
      if (ec) return make_status(Error::Io, path_, "cannot replace existing output: " + ec.message());
    }
    fs::rename(temp_, path_, ec);
    if (ec) return make_status(Error::Io, path_, "cannot move output into place: " + ec.message());
    temp_.clear();
    if (!old.empty()) fs::remove_all(old, ec);
    return Status::Ok();
  }

 private:
  std::string path_, temp_;
  bool overwrite_ = false;
};

bool is_link_error(Error e) {
  return e == Error::DirLinkDangling || e == Error::DirLinkToDirectory || e == Error::DirLinkNotRegular;
}

Status hash_file(const std::string& path, std::string* hex) {
  MappedFile f;
  Status s = f.open(path);
  if (!s.ok()) return s;
  Sha256 sha;
  for (uint64_t off = 0; off < f.size(); off += uint64_t{1} << 26) {
    if (interrupted()) return interrupted_status(path);
    const uint64_t n = std::min<uint64_t>(uint64_t{1} << 26, f.size() - off);
    sha.update(f.data() + off, n);
    f.release(off, n);
  }
  *hex = to_hex(sha.digest());
  return Status::Ok();
}

Status copy_file_atomic(const std::string& from, const std::string& to, bool overwrite) {
  MappedFile f;
  Status s = f.open(from);
  if (!s.ok()) return s;
  AtomicOutputFile o;
  s = o.open(to, overwrite);
  if (s.ok()) s = o.write(f.data(), f.size());
  if (s.ok()) s = o.commit();
  return s;
}

std::string stored_name(const std::string& rel) {
  return ends_with(rel, ".safetensors") ? rel.substr(0, rel.size() - 12) + ".df11" : rel;
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
  for (; it != end; it.increment(ec)) {
    if (ec) return make_status(Error::Io, root, "cannot read directory: " + ec.message());
    // Lexically: fs::relative() would resolve the links this scan examines.
    const std::string rel = it->path().lexically_relative(root).generic_string();
    InputEntry e;
    Status s = classify_input_entry(root, rel, &e);
    if (!s.ok()) return s;
    if (e.kind == EntryKind::Directory) {
      dirs->push_back(rel);
    } else if (e.kind == EntryKind::RegularFile) {
      files->push_back(rel);
      if (e.link) links->insert(rel);
    } else {
      return make_status(Error::DirUnsupportedEntry, root, "'" + rel + "' is not a regular file or directory");
    }
  }
  std::sort(files->begin(), files->end());
  std::sort(dirs->begin(), dirs->end());
  return Status::Ok();
}

Status read_manifest(const std::string& dir, Manifest* m) {
  const std::string path = dir + "/" + kManifestName;
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {  // e.g. a df11 model in the Hugging Face cache
    Status s = check_input_file(dir, kManifestName, nullptr);
    if (!s.ok()) return s;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_status(Error::Io, dir, std::string("not a df11 directory: cannot read ") + kManifestName);
  std::stringstream ss;
  ss << f.rdbuf();
  return manifest_from_json(ss.str(), path, m);
}

Status compress_dir(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  std::vector<std::string> files, dirs;
  std::set<std::string> links;
  Status s = scan_dir(in, &files, &dirs, &links);
  if (!s.ok()) return s;
  std::set<std::string> outputs;
  for (const auto& rel : files) {
    if (rel == kManifestName) return make_status(Error::DirUnsupportedEntry, in, std::string("input already contains ") + kManifestName);
    if (ends_with(rel, ".safetensors.index.json")) {
      const std::string sub = fs::path(rel).has_parent_path() ? in + "/" + fs::path(rel).parent_path().string() : in;
      s = check_model_index(sub);
      if (!s.ok()) return s;
    }
    if (!outputs.insert(stored_name(rel)).second)
      return make_status(Error::DirUnsupportedEntry, in, "two inputs map to '" + stored_name(rel) + "'");
  }
  AtomicOutputDir od;
  s = od.open(out, opt.overwrite);
  if (!s.ok()) return s;
  Manifest m;
  m.directories = dirs;
  for (const auto& d : dirs) fs::create_directories(od.temp() + "/" + d);
  uint64_t total = 0, done = 0;
  for (const auto& rel : files) {
    std::error_code ec;  // a file may vanish meanwhile: reported when it is reached
    const uint64_t size = fs::file_size(in + "/" + rel, ec);
    if (!ec) total += size;
  }
  for (const auto& rel : files) {
    if (interrupted()) return interrupted_status(in);
    const std::string src = in + "/" + rel, dst = od.temp() + "/" + stored_name(rel);
    std::error_code ec;
    const uint64_t src_size = fs::file_size(src, ec);
    if (ec) return make_status(Error::Io, src, "cannot stat: " + ec.message());
    ManifestEntry e{rel, src_size, "", stored_name(rel), links.count(rel) > 0};
    FileReport fr;
    fr.path = rel;
    if (ends_with(rel, ".safetensors")) {
      Sha256 sha;
      Options o = opt;
      const uint64_t base = done;
      if (opt.progress) o.progress = [&](uint64_t d, uint64_t) { opt.progress(base + d, total); };
      s = compress_one(src, dst, o, &fr, &sha);
      if (!s.ok()) return s;
      e.sha256 = to_hex(sha.digest());
    } else {
      s = hash_file(src, &e.sha256);
      if (s.ok()) s = copy_file_atomic(src, dst, false);
      if (!s.ok()) return s;
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    done += e.size;
    if (opt.progress) opt.progress(done, total);
    if (report) report->files.push_back(std::move(fr));
    m.files.push_back(std::move(e));
  }
  {
    AtomicOutputFile mf;
    const std::string text = manifest_to_json(m);
    s = mf.open(od.temp() + "/" + kManifestName, false);
    if (s.ok()) s = mf.write(text.data(), text.size());
    if (s.ok()) s = mf.commit();
    if (!s.ok()) return s;
  }
  return od.commit();
}

Status decompress_dir(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  AtomicOutputDir od;
  s = od.open(out, opt.overwrite);
  if (!s.ok()) return s;
  for (const auto& d : m.directories) fs::create_directories(od.temp() + "/" + d);
  for (const auto& e : m.files) {
    if (interrupted()) return interrupted_status(in);
    const std::string src = in + "/" + e.stored_as, dst = od.temp() + "/" + e.path;
    // Stored files may be links (a df11 model downloaded into the Hugging
    // Face cache); the restored files are always regular files.
    s = check_input_file(in, e.stored_as, nullptr);
    if (!s.ok()) return s;
    fs::create_directories(fs::path(dst).parent_path());
    FileReport fr;
    fr.path = e.path;
    std::string hex;
    if (e.stored_as != e.path) {
      Sha256 sha;
      s = decompress_one(src, dst, opt, &fr, &sha);
      if (!s.ok()) return s;
      hex = to_hex(sha.digest());
    } else {
      s = hash_file(src, &hex);
      if (s.ok()) s = copy_file_atomic(src, dst, false);
      if (!s.ok()) return s;
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    if (hex != e.sha256)
      return make_status(Error::VerifyMismatch, src, "restored '" + e.path + "' has SHA-256 " + hex + ", manifest says " + e.sha256);
    if (report) report->files.push_back(std::move(fr));
  }
  return od.commit();
}

Status verify_dir(const std::string& in, const std::string& against, const Options& opt, VerifyReport* rep) {
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  for (const auto& e : m.files) {
    if (interrupted()) return interrupted_status(in);
    const std::string src = in + "/" + e.stored_as;
    const std::string orig = against.empty() ? "" : against + "/" + e.path;
    s = check_input_file(in, e.stored_as, nullptr);
    if (!s.ok() && is_link_error(s.code)) return s;  // refused input; a missing file is a failure below
    std::string hex;
    if (e.stored_as != e.path) {
      Sha256 sha;
      const size_t before = rep->failures.size();
      s = verify_one(src, orig, e.path, opt, rep, &sha);
      if (!s.ok()) {
        rep->failures.push_back(e.path + ": " + s.message);
        ++rep->files_checked;
        continue;
      }
      if (rep->failures.size() != before) continue;
      hex = to_hex(sha.digest());
    } else {
      s = hash_file(src, &hex);
      if (!s.ok()) {
        rep->failures.push_back(e.path + ": " + s.message);
        continue;
      }
      ++rep->files_checked;
      if (!orig.empty()) {
        std::string ohex;
        s = hash_file(orig, &ohex);
        if (!s.ok() || ohex != e.sha256) rep->failures.push_back(e.path + ": differs from " + orig);
      }
    }
    if (hex != e.sha256) rep->failures.push_back(e.path + ": SHA-256 differs from the manifest");
  }
  return Status::Ok();
}

}  // namespace

namespace {

using FileOp = Status (*)(const std::string&, const std::string&, const Options&, FileReport*, Sha256*);
using DirOp = Status (*)(const std::string&, const std::string&, const Options&, Report*);

// Shared front end of compress and decompress: default output, file or
// directory, and the report's totals.
Status run_op(const std::string& in, const std::string& out_arg, bool compressing, const Options& opt,
              Report* report, FileOp file_op, DirOp dir_op) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::exists(in, ec)) return make_status(Error::Io, in, "no such file or directory");
  const std::string out = out_arg.empty() ? default_output_path(in, compressing) : out_arg;
  Status s;
  if (fs::is_directory(in, ec)) {
    s = dir_op(in, out, opt, report);
  } else {
    FileReport fr;
    fr.path = in;
    s = file_op(in, out, opt, &fr, nullptr);
    if (report && s.ok()) report->files.push_back(std::move(fr));
  }
  if (report) {
    for (const auto& f : report->files) {
      report->original_bytes += f.original_bytes;
      report->stored_bytes += f.stored_bytes;
    }
    report->seconds = seconds_since(t0);
  }
  return s;
}

}  // namespace

Status compress(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  return run_op(in, out, true, opt, report, compress_one, compress_dir);
}

Status decompress(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  return run_op(in, out, false, opt, report, decompress_one, decompress_dir);
}

Status verify(const std::string& in, const std::string& against, const Options& opt, VerifyReport* rep) {
  std::error_code ec;
  if (!fs::exists(in, ec)) return make_status(Error::Io, in, "no such file or directory");
  if (!against.empty() && !fs::exists(against, ec)) return make_status(Error::Io, against, "no such file or directory");
  Status s = fs::is_directory(in, ec) ? verify_dir(in, against, opt, rep) : verify_one(in, against, in, opt, rep, nullptr);
  if (!s.ok()) return s;
  if (!rep->failures.empty())
    return make_status(Error::VerifyMismatch, in, std::to_string(rep->failures.size()) + " check(s) failed");
  return Status::Ok();
}

Status info(const std::string& in, const Options& opt, Report* report) {
  std::error_code ec;
  if (!fs::exists(in, ec)) return make_status(Error::Io, in, "no such file or directory");
  if (!fs::is_directory(in, ec)) {
    FileReport fr;
    fr.path = in;
    Status s = info_one(in, opt, &fr);
    if (!s.ok()) return s;
    report->original_bytes += fr.original_bytes;
    report->stored_bytes += fr.stored_bytes;
    report->files.push_back(std::move(fr));
    return Status::Ok();
  }
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  for (const auto& e : m.files) {
    FileReport fr;
    fr.path = e.path;
    s = check_input_file(in, e.stored_as, nullptr);
    if (!s.ok() && is_link_error(s.code)) return s;
    if (e.stored_as != e.path) {
      s = info_one(in + "/" + e.stored_as, opt, &fr);
      if (!s.ok()) return s;
      fr.path = e.path;
    } else {
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    report->original_bytes += fr.original_bytes;
    report->stored_bytes += fr.stored_bytes;
    report->files.push_back(std::move(fr));
  }
  return Status::Ok();
}

}  // namespace df11
