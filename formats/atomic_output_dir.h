// An output directory built under a temporary name beside its destination and
// renamed into place, so that an error or Ctrl-C leaves nothing partial behind
// (compress/decompress of model directories, export). Writing never follows a
// link: a link at the output path is OutputIsLink, checked at open and again
// just before the rename.
#pragma once
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <string>

#include "df11.h"
#include "file_io.h"
#include "manifest.h"
#include "ops.h"

namespace df11 {

namespace testing {
// Runs in AtomicOutputDir::commit just before the output is moved into
// place, for tests of another run's output appearing or vanishing at that
// moment. Process-wide; empty (the default) for none.
inline std::function<void()>& before_dir_rename() {
  static std::function<void()> hook;
  return hook;
}
}  // namespace testing


// A directory built under a temporary name beside its destination and renamed
// into place by commit(); removed with everything in it otherwise.
class AtomicOutputDir {
 public:
  ~AtomicOutputDir() {
    std::error_code ec;
    if (!temp_.empty()) std::filesystem::remove_all(temp_, ec);
  }
  Status open(const std::string& path, bool overwrite) {
    // "out/" names the directory "out": without the slash, so that the
    // temporary goes beside it and the rename targets it.
    path_ = path;
    while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
    overwrite_ = overwrite;
    if (Status s = refuse_special_output(path_); !s.ok()) return s;
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(path_, ec)) && !overwrite)
      return make_status(Error::OutputExists, path_, "output exists (use -f to overwrite)");
    const std::filesystem::path p = resolved(path_);
    dest_ = p.string();
    std::string tmpl = (p.parent_path() / (temp_name_prefix(p.filename().string()) + "XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) return make_status(Error::Io, path_, std::string("cannot create output directory: ") + std::strerror(errno));
    temp_ = tmpl;
    return Status::Ok();
  }
  const std::string& temp() const { return temp_; }
  // `s` with the temporary directory's path (which means nothing to a user
  // and is gone once df11 exits) replaced by the output's path `out`, as
  // open(out) would name it: errors of the files written inside it then name
  // OUT/rel.
  static Status named_for_output(Status s, const std::string& out) {
    if (s.ok()) return s;
    std::string p = out;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const std::filesystem::path a = resolved(p);
    const std::string prefix = (a.parent_path() / temp_name_prefix(a.filename().string())).string();
    constexpr size_t kRandom = 6;  // mkdtemp's XXXXXX
    for (size_t at = s.message.find(prefix); at != std::string::npos; at = s.message.find(prefix, at + p.size()))
      s.message.replace(at, std::min(prefix.size() + kRandom, s.message.size() - at), p);
    return s;
  }
  // Makes temp()/rel and its parents; Io (naming the output) on failure.
  Status make_dir(const std::string& rel) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(temp_) / rel, ec);
    if (ec) return make_status(Error::Io, path_, "cannot create '" + rel + "': " + ec.message());
    for (std::filesystem::path q(rel); !q.empty() && q != "."; q = q.parent_path()) made_.insert(q.generic_string());
    return Status::Ok();
  }
  // The output's directories get the modes of their namesakes under `src`
  // (the input directory) at commit, less the umask, as cp(1) gives them: a
  // private folder stays private. Without it, or where `src` has no such
  // folder, they get mkdir(1)'s mode.
  void keep_modes_from(const std::string& src) { src_ = src; }
  // The -f rule of commit(), checked before the work where the caller knows
  // what the output will hold (the relative paths of its files and folders;
  // their parent folders are implied): a run that would be refused at the
  // end is refused at once.
  template <class Paths>
  Status check_replaceable_early(const Paths& will_write) const {
    std::error_code ec;
    if (!overwrite_ || !std::filesystem::is_directory(std::filesystem::symlink_status(path_, ec))) return Status::Ok();
    std::set<std::string> will_hold{kManifestName};
    for (const auto& rel : will_write)
      for (std::filesystem::path q(rel); !q.empty(); q = q.parent_path()) will_hold.insert(q.generic_string());
    return check_replaceable_by([&](const std::filesystem::path& rel) { return will_hold.count(rel.generic_string()) > 0; });
  }
  Status commit() {
    if (interrupted()) return interrupted_status(path_);
    if (Status s = refuse_special_output(path_); !s.ok()) return s;
    std::error_code ec;
    const bool exists = std::filesystem::exists(std::filesystem::symlink_status(path_, ec));
    if (exists && !overwrite_) return make_status(Error::OutputExists, path_, "output exists (use -f to overwrite)");
    if (exists && std::filesystem::is_directory(std::filesystem::symlink_status(path_, ec))) {
      if (Status s = check_replaceable(); !s.ok()) return s;
    }
    // One system call each way, so that a concurrent run or reader never
    // sees the output path missing: without -f the new output goes in only
    // if nothing is there (RENAME_NOREPLACE: a run that lost a race gets
    // OutputExists, not "Directory not empty"); with -f it swaps places with
    // the old one (RENAME_EXCHANGE), which is then deleted under the
    // temporary's name. Where the file system has neither, two renames, and
    // the old output back in place if the second fails.
    const unsigned flags = exists ? RENAME_EXCHANGE : RENAME_NOREPLACE;
    if (testing::before_dir_rename()) testing::before_dir_rename()();
    if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, dest_.c_str(), flags) == 0) {
      set_modes_and_finish(exists ? temp_ : std::string());
      return Status::Ok();
    }
    const int err = errno;
    if (err == EEXIST && !exists) {  // another run's output appeared meanwhile
      if (!overwrite_) return make_status(Error::OutputExists, path_, "output exists (use -f to overwrite)");
      // -f: it is replaced as one that was there from the start would be.
      if (Status s = check_replaceable(); !s.ok()) return s;
      if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_EXCHANGE) == 0) {
        set_modes_and_finish(temp_);
        return Status::Ok();
      }
      return make_status(Error::Io, path_, std::string("cannot replace existing output: ") + std::strerror(errno));
    }
    if (err == ENOENT && exists) {  // another run removed or moved the old output meanwhile
      if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_NOREPLACE) == 0) {
        set_modes_and_finish(std::string());
        return Status::Ok();
      }
      if (errno == EEXIST)  // and yet another one's took its place
        return make_status(Error::OutputExists, path_, "output appeared while this one was moved in; run again");
      return make_status(Error::Io, path_, std::string("cannot move output into place: ") + std::strerror(errno));
    }
    if (err != EINVAL && err != ENOSYS && err != ENOTSUP)
      return make_status(Error::Io, path_, std::string("cannot move output into place: ") + std::strerror(err));
    std::string old;
    if (exists) {
      old = temp_ + ".old";
      std::filesystem::rename(dest_, old, ec);
      if (ec) return make_status(Error::Io, path_, "cannot replace existing output: " + ec.message());
    }
    std::filesystem::rename(temp_, dest_, ec);
    if (ec) {
      std::error_code back;
      if (!old.empty()) std::filesystem::rename(old, dest_, back);
      if (!old.empty() && back)
        return make_status(Error::Io, path_, "cannot move output into place: " + ec.message() +
                                                 "; the previous output is kept as " + old);
      return make_status(Error::Io, path_, "cannot move output into place: " + ec.message());
    }
    set_modes_and_finish(old);
    return Status::Ok();
  }

 private:
  // The new output is in place: its folders get their modes, and what was
  // there before (`previous`, "" for nothing) is deleted.
  void set_modes_and_finish(std::string previous) {  // a copy: it may be temp_, cleared here
    temp_.clear();
    set_modes();
    if (!previous.empty()) remove_tree(previous);
  }
  // The output's absolute path, its folder resolved as the kernel would
  // (`..` after a linked folder, or from inside the output: `-o ../out/` run
  // in out); the last name itself is not followed (a link there is refused).
  static std::filesystem::path resolved(const std::string& path) {
    std::error_code ec;
    const std::filesystem::path a = std::filesystem::absolute(path, ec);
    const std::filesystem::path dir = std::filesystem::weakly_canonical(a.parent_path(), ec);
    return ec ? a : dir / a.filename();
  }
  // mkdtemp made the output 0700, private while it was built; in place it
  // gets its input's mode, or the mode mkdir(1) would give it, so that other
  // users (a serving process, a CI cache) can read the model as they could
  // its files. A set-group-ID bit inherited from the parent is kept. Set
  // once in place, deepest first: a read-only folder could not have been
  // written into, nor removed after a failure.
  void set_modes() const {
    auto set = [&](const std::string& path, mode_t mode) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) ::chmod(path.c_str(), mode | (st.st_mode & S_ISGID));
    };
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      mode_t mode = 0777 & ~process_umask();
      source_mode(*it, &mode);
      set(dest_ + "/" + *it, mode);
    }
    mode_t top = 0777 & ~process_umask();
    source_mode("", &top);
    set(dest_, top);
  }
  // remove_all, after giving the owner write access to every folder in the
  // tree: an earlier output with a read-only folder (kept from its input)
  // would otherwise stay behind, whole, under its hidden name.
  static void remove_tree(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    ::chmod(path.c_str(), S_IRWXU);
    for (fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end; !ec && it != end;
         it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), S_IRWXU);
    fs::remove_all(path, ec);
  }
  // -f replaces an earlier output, never a user's folder: the existing
  // directory must be a df11 directory (its manifest made by df11), or hold
  // nothing that the new output does not hold too. `df11 decompress m.df11
  // -o ~/models -f` would otherwise delete everything else in ~/models.
  Status check_replaceable() const {
    return check_replaceable_by([&](const std::filesystem::path& rel) {
      std::error_code ec;
      return std::filesystem::exists(std::filesystem::symlink_status(std::filesystem::path(temp_) / rel, ec));
    });
  }
  template <class Holds>
  Status check_replaceable_by(Holds holds) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_regular_file(fs::symlink_status(fs::path(path_) / kManifestName, ec))) return Status::Ok();
    fs::recursive_directory_iterator it(path_, fs::directory_options::none, ec), end;
    if (ec) return make_status(Error::Io, path_, "cannot read the existing output: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) return make_status(Error::Io, path_, "cannot read the existing output: " + ec.message());
      const fs::path rel = it->path().lexically_relative(path_);
      if (!holds(rel))
        return make_status(Error::OutputExists, path_,
                           "output exists and holds '" + rel.generic_string() +
                               "', which this output would not replace; -f replaces only an earlier df11 output "
                               "(remove the directory yourself)");
    }
    return Status::Ok();
  }
  // The mode for the output's folder `rel` ("" for the top): that of the
  // input's, less the umask; false where there is no input folder.
  bool source_mode(const std::string& rel, mode_t* mode) const {
    if (src_.empty()) return false;
    struct stat st {};
    if (::stat((rel.empty() ? src_ : src_ + "/" + rel).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    *mode = st.st_mode & 0777 & ~process_umask();
    return true;
  }

  std::string path_, dest_, temp_, src_;
  std::set<std::string> made_;  // folders made inside, by relative path
  bool overwrite_ = false;
};

}  // namespace df11
