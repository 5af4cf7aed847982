#include "file_io.h"

#include "behind_queue.h"
#include "fault_guard.h"
#include "sha256.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

// glibc defines it from 2.35; the kernel has it from 5.14 (older ones refuse
// it with EINVAL, which map_for_writers checks).
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace df11 {

mode_t process_umask() {
  // /proc/self/status has it (Linux 4.7) without changing it: umask(2) can
  // only read the mask by setting it, a race with other threads of the host.
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  const mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};  // the first one
static_assert(std::atomic<int>::is_always_lock_free, "set from a signal handler");

void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);
  if (g_interrupted.exchange(true)) {
    // Second signal: the user insists; stop now with the conventional status.
    signal(sig, SIG_DFL);
    raise(sig);
  }
}
}  // namespace

bool interrupted() noexcept { return g_interrupted.load(std::memory_order_relaxed); }

int interrupt_signal() noexcept { return g_signal.load(); }

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // SIGHUP (a closed terminal, a dropped ssh session) stops as cleanly, so
  // that no temporary output or spooled pipe is left behind. A signal the
  // caller ignores stays ignored: `nohup df11 ...`, and the SIGINT that a
  // shell ignores for `df11 ... &`, must not start stopping it.
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
}

Status make_status(Error e, const std::string& label, const std::string& what) {
  return {e, label + ": " + what + " (" + error_name(e) + ")"};
}

Status refuse_special_output(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();  // absent (or unreachable: open() reports it)
  if (S_ISLNK(st.st_mode))
    return make_status(Error::OutputIsLink, path, "output is a symbolic link; df11 never writes through or replaces one (remove it first)");
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device";
    return make_status(Error::OutputNotRegular, path,
                       std::string("output is ") + what +
                           "; df11 writes regular files and never replaces another kind (use -o - for a pipe, "
                           "verify to check without writing)");
  }
  return Status::Ok();
}

std::string temp_name_prefix(const std::string& filename) {
  constexpr size_t kNameMax = 255, kFixed = 1 + 9 + 6;  // ".", ".df11tmp-", XXXXXX
  return "." + filename.substr(0, kNameMax - kFixed) + ".df11tmp-";
}

bool is_df11_temporary(const std::string& name) {
  std::string n = name;
  if (n.size() > 4 && n.compare(n.size() - 4, 4, ".old") == 0) n.resize(n.size() - 4);
  constexpr size_t kRandom = 6;  // mkstemp's and mkdtemp's XXXXXX
  const std::string mark = ".df11tmp-";
  if (n.size() < 2 + mark.size() + kRandom || n[0] != '.') return false;
  if (n.compare(n.size() - kRandom - mark.size(), mark.size(), mark) != 0) return false;
  return std::all_of(n.end() - kRandom, n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

namespace {

// Absolute, with links in its existing part resolved, and no trailing empty
// component ("out/" names the same directory as "out").
std::filesystem::path resolved(const std::string& p, std::error_code& ec) {
  std::filesystem::path r = std::filesystem::weakly_canonical(p, ec);
  if (!r.empty() && r.filename().empty()) r = r.parent_path();
  return r;
}

// Whether `outer` is `inner` or one of the directories above it.
bool holds(const std::filesystem::path& outer, const std::filesystem::path& inner) {
  return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

}  // namespace

Status refuse_output_over_input(const std::string& in, const std::string& out) {
  std::error_code ec;
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(out, ec))) return Status::Ok();
  const std::filesystem::path a = resolved(in, ec);
  if (ec) return Status::Ok();  // the input's own open reports what is wrong with it
  const std::filesystem::path b = resolved(out, ec);
  if (ec) return Status::Ok();  // so does the output's
  if (a == b || std::filesystem::equivalent(in, out, ec))
    return make_status(Error::Usage, out, "the output is the input file or directory; df11 never modifies its input");
  if (holds(b, a))
    return make_status(Error::Usage, out, "replacing the output would remove the input " + in + " inside it");
  if (holds(a, b))
    return make_status(Error::Usage, out, "the output would be written inside the input directory " + in);
  return Status::Ok();
}

Status interrupted_status(const std::string& label) {
  return make_status(Error::Interrupted, label, "interrupted by signal; partial output removed");
}

MappedFile::~MappedFile() {
  fault_guard::remove(guard_);
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

Status MappedFile::read(uint64_t offset, uint64_t len, void* dst) const {
  if (offset > size_ || len > size_ - offset) return make_status(Error::Io, path_, "read past the end of the file");
  uint8_t* p = static_cast<uint8_t*>(dst);
  while (len > 0) {
    const ssize_t n = ::pread(fd_, p, std::min<uint64_t>(len, uint64_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_status(Error::Io, path_, std::string("read failed: ") + std::strerror(errno));
    }
    if (n == 0) return make_status(Error::Io, path_, "file shrank while being read");
    p += n;
    offset += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status MappedFile::check_size(uint64_t end, const std::string& what) const {
  const std::string lead = what.empty() ? "" : what + ": ";
  struct stat st {};
  if (fstat(fd_, &st) != 0) return make_status(Error::Io, path_, lead + "cannot stat: " + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) < end || fault_guard::faulted(guard_))
    return make_status(Error::Io, path_, lead + "file shrank while being read");
  return Status::Ok();
}

Status stat_input(const std::string& path, bool* is_dir) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return make_status(Error::Io, path, err == ENOENT ? std::string("no such file or directory")
                                                      : std::string("cannot stat: ") + std::strerror(err));
  }
  if (is_dir) *is_dir = S_ISDIR(st.st_mode);
  return Status::Ok();
}

namespace {

// A descriptor closed on every way out, unless handed on with release().
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

int open_regular_file(const std::string& path, std::string* why, uint64_t* size, int64_t* mtime_ns) {
  // O_NONBLOCK: open(2) of a FIFO waits for a writer otherwise, so that the
  // S_ISREG check below would come too late (`df11 compress fifo` hung). On
  // the regular file it lets through it means nothing; it is cleared anyway.
  OwnedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    *why = std::string("cannot open: ") + std::strerror(errno);
    return -1;
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    *why = std::string("cannot stat: ") + std::strerror(errno);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return -1;
  }
  if (size) *size = static_cast<uint64_t>(st.st_size);
  if (mtime_ns) *mtime_ns = st.st_mtim.tv_sec * int64_t{1000000000} + st.st_mtim.tv_nsec;
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    *why = std::string("cannot open: ") + std::strerror(errno);
    return -1;
  }
  return fd.release();
}

bool read_regular_file(const std::string& path, std::string* text, std::string* why, uint64_t max_bytes) {
  uint64_t size = 0;
  const OwnedFd fd(open_regular_file(path, why, &size));
  if (fd.get() < 0) return false;
  text->clear();
  text->reserve(std::min(size, max_bytes));
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      *why = std::string("read failed: ") + std::strerror(errno);
      return false;
    }
    if (text->size() + static_cast<uint64_t>(n) > max_bytes) {
      *why = "is larger than " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    text->append(buf, static_cast<size_t>(n));
  }
}

Status MappedFile::open(const std::string& path) {
  std::string why;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  // Size and mtime from one fstat, before the mapping: check_unchanged
  // compares with these.
  OwnedFd fd(open_regular_file(path, &why, &size, &mtime_ns));
  if (fd.get() < 0) return make_status(Error::Io, path, why);
  if (size > 0) {
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED)  // ENOMEM: no address space left for it (ulimit -v)
      return make_status(errno == ENOMEM ? Error::OutOfMemory : Error::Io, path,
                         std::string("cannot map: ") + std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
    guard_ = fault_guard::add(p, size, PROT_READ);
    madvise(p, size, MADV_SEQUENTIAL);
  }
  mtime_ns_ = mtime_ns;
  size_ = size;
  fd_ = fd.release();  // kept for read()
  path_ = path;
  return Status::Ok();
}

Status MappedFile::check_unchanged() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0) return make_status(Error::Io, path_, std::string("cannot stat: ") + std::strerror(errno));
  // Not the ctime: a rename over the path, a hard link or a chmod changes it
  // with the bytes untouched (another df11 -f committing over this file, a
  // cache deduplicating it).
  const int64_t mtime = st.st_mtim.tv_sec * int64_t{1000000000} + st.st_mtim.tv_nsec;
  if (static_cast<uint64_t>(st.st_size) != size_ || mtime != mtime_ns_ || fault_guard::faulted(guard_))
    return make_status(Error::Io, path_, "file changed while being read (another process modified it)");
  return Status::Ok();
}

void MappedFile::release(uint64_t offset, uint64_t len) const {
  if (!data_ || len == 0) return;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t begin = (offset + page - 1) / page * page;  // only whole pages inside the range
  const uint64_t end = std::min(size_, offset + len) / page * page;
  if (end > begin) madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
}

void MappedFile::will_need(uint64_t offset, uint64_t len) const {
  if (!data_ || len == 0) return;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t begin = offset / page * page;
  // Map the whole range in one call instead of one page fault per 64 KB
  // (MADV_POPULATE_READ, Linux 5.14); older kernels fall back to read-ahead.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  uint8_t* p = const_cast<uint8_t*>(data_) + begin;
  const uint64_t n = std::min(size_, offset + len) - begin;
  if (madvise(p, n, MADV_POPULATE_READ) != 0) madvise(p, n, MADV_WILLNEED);
}

AtomicOutputFile::AtomicOutputFile() = default;

AtomicOutputFile::~AtomicOutputFile() { discard(); }

void AtomicOutputFile::seek(uint64_t offset) {
  // The descriptor's position follows at the next write(): a file of
  // thousands of small tensors is all pwrite(2) and seeks, a system call each.
  offset_ = offset;
  seek_pending_ = true;
}

void AtomicOutputFile::start_writer() {
  // 8 buffers of 4 MiB: 32 MiB in flight at most.
  if (!writer_)
    writer_ = std::make_unique<BehindQueue>(
        [this](const uint8_t* p, uint64_t n, uint64_t at) { return pwrite(p, n, at); }, 8);
}

Status AtomicOutputFile::pwrite_behind(const void* data, uint64_t size, uint64_t offset) {
  start_writer();  // a no-op when started (see the header: before workers run)
  return writer_->push(data, size, offset);
}

Status AtomicOutputFile::flush() { return writer_ ? writer_->drain() : Status::Ok(); }

Status AtomicOutputFile::io_error(const char* what, int err) const {
  return make_status(Error::Io, path_, std::string(what) + ": " + std::strerror(err));
}

Status AtomicOutputFile::open(const std::string& path, bool overwrite) {
  discard();
  path_ = path;
  overwrite_ = overwrite;
  if (Status s = refuse_special_output(path); !s.ok()) return s;
  std::error_code ec;
  // A directory is never replaced by a file, with -f or without: the rename
  // would fail at the end anyway, after all the work.
  if (std::filesystem::is_directory(std::filesystem::symlink_status(path, ec)))
    return make_status(Error::Io, path, "output is a directory; give the output file's own path");
  if (!overwrite && std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    return make_status(Error::OutputExists, path, "output exists (use -f to overwrite)");
  const std::filesystem::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  std::string tmpl = dir + "/" + temp_name_prefix(p.filename().string()) + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  fd_ = mkostemp(buf.data(), O_CLOEXEC);
  if (fd_ < 0) return io_error("cannot create output", errno);
  temp_ = buf.data();
  fchmod(fd_, 0644 & ~process_umask());
  offset_ = 0;
  seek_pending_ = false;
  return Status::Ok();
}

void AtomicOutputFile::keep_mode_of(const std::string& src) {
  struct stat st {};
  if (fd_ >= 0 && ::stat(src.c_str(), &st) == 0 && S_ISREG(st.st_mode))
    fchmod(fd_, st.st_mode & 0777 & ~process_umask());
}

Status AtomicOutputFile::write(const void* data, uint64_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (seek_pending_ && size > 0) {
    if (lseek(fd_, static_cast<off_t>(offset_), SEEK_SET) < 0) return io_error("seek failed", errno);
    seek_pending_ = false;
  }
  while (size > 0) {
    // Pieces of 1 MiB: the kernel copies a large write() into the page cache
    // far more slowly than a series of small ones (measured with dd: 32 MiB
    // writes cost 2-10x the system time of 128 KiB writes on this VM).
    const ssize_t n = ::write(fd_, p, std::min<uint64_t>(size, 1u << 20));
    if (n < 0) {
      if (errno == EINTR) {
        if (interrupted()) return interrupted_status(path_);
        continue;
      }
      return io_error("write failed", errno);
    }
    p += n;
    size -= static_cast<uint64_t>(n);
    offset_ += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status AtomicOutputFile::write_zeros(uint64_t size) {
  static const uint8_t zeros[4096] = {};
  while (size > 0) {
    const uint64_t n = std::min<uint64_t>(size, sizeof zeros);
    Status s = write(zeros, n);
    if (!s.ok()) return s;
    size -= n;
  }
  return Status::Ok();
}

bool AtomicOutputFile::map_for_writers(uint64_t size, bool pwrite_first) {
  if (map_) return true;
  // Before any write: the file is extended to `size`, not cut to it.
  if (size == 0 || fd_ < 0 || writer_ || offset_ > 0) return false;
  // Only where a page, once prefaulted, can be stored to without more space:
  // tmpfs, and ext4 and XFS (their delayed allocation reserves the blocks at
  // the first write fault). A copy-on-write file system (btrfs) reserves
  // space at every write fault, so a page faulted in again (written back
  // meanwhile, or dropped with a neighbouring piece) could still be SIGBUS;
  // others may allocate only at write-back, where an error would go unseen
  // without fsync. There pwrite(2) reports every error where it happens.
  struct statfs fs {};
  if (::fstatfs(fd_, &fs) != 0) return false;
  const auto type = static_cast<unsigned long>(fs.f_type);
  if (type != TMPFS_MAGIC && type != EXT4_SUPER_MAGIC && type != XFS_SUPER_MAGIC) return false;
  pwrite_first_ = pwrite_first;
  // Past RLIMIT_FSIZE, ftruncate would raise SIGXFSZ, which kills a library
  // caller that does not ignore it (the CLI does), though the real output may
  // fit (compress maps an estimate). Such a size, or a file that cannot be
  // extended, stays in pwrite mode, whose writes report EFBIG where they do.
  rlimit limit{};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && size > limit.rlim_cur) return false;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return false;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) return false;
  map_ = static_cast<uint8_t*>(p);
  map_guard_ = fault_guard::add(p, size, PROT_READ | PROT_WRITE);
  map_size_ = size;
  // Kernels before 5.14 refuse MADV_POPULATE_WRITE (EINVAL); without it a
  // full disk would be a SIGBUS, so such a file stays in pwrite mode.
  const uint64_t probe = std::min<uint64_t>(size, static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  if (::madvise(map_, probe, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) unmap();
  return map_ != nullptr;
}

Status AtomicOutputFile::set_final_size(uint64_t size) {
  Status s = flush();
  if (!s.ok()) return s;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return io_error("cannot set the file's size", errno);
  return Status::Ok();
}

void AtomicOutputFile::unmap() {
  fault_guard::remove(map_guard_);
  map_guard_ = -1;
  if (map_) ::munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

Status AtomicOutputFile::store_mapped(const void* data, uint64_t size, uint64_t offset) {
  if (offset > map_size_ || size > map_size_ - offset) return pwrite_fd(data, size, offset);
  if (size == 0) return Status::Ok();
  // pwrite(2) costs less per byte than faulting pages in: while no other
  // thread is inside it, take it; the mapping carries the overflow.
  if (pwrite_first_ && write_mu_.try_lock()) {
    std::lock_guard<std::mutex> lock(write_mu_, std::adopt_lock);
    return pwrite_locked(data, size, offset);
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint8_t* const begin = map_ + offset / page * page;
  const uint64_t len = static_cast<uint64_t>(map_ + std::min(map_size_, (offset + size + page - 1) / page * page) - begin);
  int rc;
  while ((rc = ::madvise(begin, len, MADV_POPULATE_WRITE)) != 0 && errno == EINTR) {
    if (interrupted()) return interrupted_status(path_);
  }
  // The pages could not all be allocated (EFAULT where a store would raise
  // SIGBUS: no space, a quota; ENOMEM): pwrite(2) names the real cause, or
  // succeeds if the condition has passed. The pages that were prefaulted
  // leave the process first.
  if (rc != 0) {
    ::madvise(begin, len, MADV_DONTNEED);
    return pwrite_fd(data, size, offset);
  }
  std::memcpy(map_ + offset, data, size);
  // Shared file pages count in the process's RSS until unmapped: drop these
  // (they stay in the page cache, dirty). An edge page shared with the
  // neighbouring piece is faulted in again, from the page cache, by whichever
  // thread writes it next.
  ::madvise(begin, len, MADV_DONTNEED);
  return Status::Ok();
}

Status AtomicOutputFile::pwrite(const void* data, uint64_t size, uint64_t offset) {
  if (map_) return store_mapped(data, size, offset);
  return pwrite_fd(data, size, offset);
}

Status AtomicOutputFile::pwrite_fd(const void* data, uint64_t size, uint64_t offset) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return pwrite_locked(data, size, offset);
}

Status AtomicOutputFile::pwrite_locked(const void* data, uint64_t size, uint64_t offset) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, std::min<uint64_t>(size, 1u << 20), static_cast<off_t>(offset));  // see write()
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write failed", errno);
    }
    p += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status AtomicOutputFile::commit() {
  Status s = flush();
  if (!s.ok()) return s;
  if (interrupted()) return interrupted_status(path_);
  // A store that faulted went to a zero page instead (fault_guard): another
  // process cut the temporary short under the mapping.
  if (fault_guard::faulted(map_guard_)) return make_status(Error::Io, path_, "the output was cut short by another process while being written");
  unmap();  // the stores are in the page cache; munmap cannot lose them
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    return io_error("close failed", err);
  }
  fd_ = -1;
  if (overwrite_) {
    // A link or a device may have appeared since open(): rename() would replace it.
    if (Status s = refuse_special_output(path_); !s.ok()) return s;
    if (std::rename(temp_.c_str(), path_.c_str()) != 0) return io_error("cannot rename into place", errno);
  } else {
    // link() fails if the target appeared meanwhile: never clobber without -f.
    if (::link(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      if (err == EEXIST) return make_status(Error::OutputExists, path_, "output exists (use -f to overwrite)");
      return io_error("cannot move into place", err);
    }
    ::unlink(temp_.c_str());
  }
  temp_.clear();
  return Status::Ok();
}

void AtomicOutputFile::discard() {
  if (writer_) {  // stopped before the descriptor closes: queued bytes are dropped, not written
    writer_->cancel();
    writer_->finish();
    writer_.reset();
  }
  unmap();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

namespace {

// Reads `f` once, in pieces, handing each to `piece`; then checks that the
// file did not change meanwhile.
template <class Piece>
Status read_once(const MappedFile& f, Piece piece) {
  constexpr uint64_t kPiece = uint64_t{4} << 20;
  std::vector<uint8_t> buf(std::min(kPiece, f.size()));
  for (uint64_t off = 0; off < f.size(); off += kPiece) {
    if (interrupted()) return interrupted_status(f.path());
    const uint64_t n = std::min(kPiece, f.size() - off);
    Status s = f.read(off, n, buf.data());
    if (s.ok()) s = piece(buf.data(), n);
    if (!s.ok()) return s;
  }
  return f.check_unchanged();
}

}  // namespace

Status copy_file_atomic(const std::string& from, const std::string& to, bool overwrite, std::string* sha256_hex,
                        uint64_t* copied_size) {
  MappedFile f;
  Status s = f.open(from);
  if (!s.ok()) return s;
  AtomicOutputFile o;
  s = o.open(to, overwrite);
  if (!s.ok()) return s;
  o.keep_mode_of(from);
  Sha256 sha;
  s = read_once(f, [&](const uint8_t* p, uint64_t n) {
    if (sha256_hex) sha.update(p, n);
    return o.write(p, n);
  });
  if (!s.ok()) return s;
  if (sha256_hex) *sha256_hex = to_hex(sha.digest());
  if (copied_size) *copied_size = f.size();
  return o.commit();
}

Status hash_file(const std::string& path, std::string* hex) {
  MappedFile f;
  Status s = f.open(path);
  if (!s.ok()) return s;
  Sha256 sha;
  s = read_once(f, [&](const uint8_t* p, uint64_t n) {
    sha.update(p, n);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  *hex = to_hex(sha.digest());
  return Status::Ok();
}

}  // namespace df11
