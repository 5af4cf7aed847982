#include "stdio_spool.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace df11cli {

namespace {

df11::Status fail(df11::Error e, const std::string& label, const std::string& what) {
  return {e, label + ": " + what + " (" + df11::error_name(e) + ")"};
}

df11::Status interrupted(const std::string& label) {
  return fail(df11::Error::Interrupted, label, "interrupted by signal; temporary files removed");
}

// RAII file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
};

// Writes all of [p, p+n) to fd; EPIPE comes back as *gone = true.
df11::Status write_all(int fd, const uint8_t* p, size_t n, const std::string& label, bool* gone) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        if (df11::interrupted()) return interrupted(label);
        continue;
      }
      if (errno == EPIPE && gone) {
        *gone = true;
        return df11::Status::Ok();
      }
      return fail(df11::Error::Io, label, std::string("write failed: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return df11::Status::Ok();
}

}  // namespace

std::string terminal_refusal(bool binary_out_to_stdout, bool stdout_is_terminal, bool binary_in_from_stdin,
                             bool stdin_is_terminal, bool force) {
  if (force) return "";
  if (binary_out_to_stdout && stdout_is_terminal)
    return "<stdout>: is a terminal; refusing to write binary data to it (redirect it, or use -f) (Usage)";
  if (binary_in_from_stdin && stdin_is_terminal)
    return "<stdin>: is a terminal; refusing to read binary data from it (redirect it, or use -f) (Usage)";
  return "";
}

SpoolDir::~SpoolDir() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

df11::Status SpoolDir::create() {
  if (!dir_.empty()) return df11::Status::Ok();
  const char* env = std::getenv("TMPDIR");
  const std::string base = env && *env ? env : "/tmp";
  base_ = base;
  std::string tmpl = base + "/df11-spool-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    return fail(df11::Error::Io, base, std::string("cannot create a temporary directory for a pipe ($TMPDIR): ") +
                                           std::strerror(errno));
  dir_ = tmpl;
  return df11::Status::Ok();
}

bool is_fifo(const std::string& arg) {
  struct stat st {};
  return !is_stdio(arg) && ::stat(arg.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

bool is_stream_path(const std::string& arg) {
  // The descriptor names themselves only: /dev/shm holds ordinary files, and
  // /dev/fd/4/m.safetensors or /proc/self/cwd/m.safetensors are ordinary paths.
  auto is_fd_name = [&](const std::string& prefix) {
    if (arg.rfind(prefix, 0) != 0 || arg.size() == prefix.size()) return false;
    return arg.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  };
  if (arg == "/dev/stdin" || is_fd_name("/dev/fd/")) return true;
  // /proc/PID/fd/N and /proc/self/fd/N
  if (arg.rfind("/proc/", 0) != 0) return false;
  const size_t fd = arg.find("/fd/", 6);
  return fd != std::string::npos && arg.find('/', 6) == fd && is_fd_name(arg.substr(0, fd + 4));
}

bool same_stream(const std::string& a, const std::string& b) {
  auto id = [](const std::string& arg, struct stat* st) {
    return is_stdio(arg) ? ::fstat(STDIN_FILENO, st) == 0 : ::stat(arg.c_str(), st) == 0;
  };
  if (is_stdio(a) && is_stdio(b)) return true;
  struct stat sa {}, sb {};
  if (!id(a, &sa) || !id(b, &sb) || sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino) return false;
  // Both reach one object: a stream when it is a pipe or stdin (a file
  // redirected to stdin is read once, in place, by the first of them).
  return S_ISFIFO(sa.st_mode) || S_ISSOCK(sa.st_mode) || S_ISCHR(sa.st_mode) || is_stdio(a) || is_stdio(b);
}

df11::Status stream_as_path(SpoolDir& spool, const std::string& arg, const std::string& name, std::string* path) {
  std::vector<StreamSource> one{{arg, name, ""}};
  df11::Status s = streams_as_paths(spool, one);
  *path = one[0].path;
  return s;
}

df11::Status streams_as_paths(SpoolDir& spool, std::vector<StreamSource>& streams) {
  if (streams.empty()) return df11::Status::Ok();
  struct Copy {
    std::string label, copy;  // the stream's name in messages; its spool copy's
    Fd in{-1}, out{-1};
    int in_fd = -1;
  };
  std::vector<Copy> copies;
  for (auto& src : streams) {
    const std::string label = stream_label(src.arg);
    Copy c;
    c.label = label;
    if (!is_stdio(src.arg)) {
      // Non-blocking, so that opening does not wait for this FIFO's writer
      // (the other side of `<(...)`, or a script that feeds another stream
      // first); poll() below waits for data from whichever writer comes.
      c.in.fd = ::open(src.arg.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (c.in.fd < 0) return fail(df11::Error::Io, label, std::string("cannot open: ") + std::strerror(errno));
      c.in_fd = c.in.fd;
    } else {
      struct stat st {};
      if (fstat(STDIN_FILENO, &st) != 0)
        return fail(df11::Error::Io, label, std::string("cannot stat: ") + std::strerror(errno));
      // A redirected regular file can be mapped where it is: no copy. (At
      // another offset, as after `{ head -c 8; df11 compress -; } < F`, only
      // the rest is the input, so it is copied like a pipe.)
      if (S_ISREG(st.st_mode) && lseek(STDIN_FILENO, 0, SEEK_CUR) == 0 && ::access("/dev/stdin", R_OK) == 0) {
        src.path = "/dev/stdin";
        continue;
      }
      // poll() would wait for ever on a descriptor open for writing only.
      const int mode = fcntl(STDIN_FILENO, F_GETFL);
      if (mode != -1 && (mode & O_ACCMODE) == O_WRONLY)
        return fail(df11::Error::Io, label, "read failed: not open for reading");
      c.in_fd = STDIN_FILENO;  // its flags are shared with other processes: left blocking
    }
    df11::Status s = spool.create();
    if (!s.ok()) return s;
    src.path = spool.file(src.name);
    // 0666 less the umask, in a private (0700) folder: the output takes
    // its mode from this copy, as from a file given by name.
    c.out.fd = ::open(src.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    c.copy = spool.label(label);
    if (c.out.fd < 0) return fail(df11::Error::Io, c.copy, std::string("cannot create: ") + std::strerror(errno));
    copies.push_back(std::move(c));
  }
  std::vector<uint8_t> buf(size_t{1} << 20);
  std::vector<pollfd> fds;
  std::vector<Copy*> active;
  for (;;) {
    fds.clear();
    active.clear();
    for (auto& c : copies)
      if (c.in_fd >= 0) {
        fds.push_back({c.in_fd, POLLIN, 0});
        active.push_back(&c);
      }
    if (active.empty()) break;
    // Ctrl-C while waiting for a writer, or between reads. The timeout
    // covers a signal that lands between this check and poll().
    if (df11::interrupted()) return interrupted(active[0]->label);
    if (::poll(fds.data(), fds.size(), 200) < 0) {
      if (errno == EINTR) continue;
      return fail(df11::Error::Io, active[0]->label, std::string("poll failed: ") + std::strerror(errno));
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Copy& c = *active[i];
      // Only after poll() said so: a blocking stdin does not block here, and
      // a FIFO whose writer has not come yet is not taken for an empty one.
      const ssize_t n = ::read(c.in_fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;  // the loop head looks at the flag
        return fail(df11::Error::Io, c.label, std::string("read failed: ") + std::strerror(errno));
      }
      if (n == 0) {
        c.in_fd = -1;
        const int fd = c.out.fd;
        c.out.fd = -1;
        if (::close(fd) != 0) return fail(df11::Error::Io, c.copy, std::string("write failed: ") + std::strerror(errno));
        continue;
      }
      df11::Status s = write_all(c.out.fd, buf.data(), static_cast<size_t>(n), c.copy, nullptr);
      if (!s.ok()) return s;
    }
  }
  // A signal that came with the end of the stream (the pipe's writer closed
  // as the signal arrived): read() saw the end first.
  if (df11::interrupted()) return interrupted(stream_label(streams.front().arg));
  return df11::Status::Ok();
}

df11::Status copy_to_stdout(const std::string& path, CopyEnd* end) {
  *end = CopyEnd::Done;
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return fail(df11::Error::Io, path, std::string("cannot open: ") + std::strerror(errno));
  bool gone = false;
  // sendfile() moves the bytes inside the kernel; where stdout does not take
  // it (O_APPEND files, some old kernels) the plain loop below does the rest.
  for (;;) {
    if (df11::interrupted()) return interrupted("<stdout>");
    const ssize_t n = ::sendfile(STDOUT_FILENO, in.fd, nullptr, size_t{1} << 24);
    if (n == 0) return df11::Status::Ok();
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno == EPIPE) {
      *end = CopyEnd::ReaderGone;
      return df11::Status::Ok();
    }
    if (errno == EINVAL || errno == ENOSYS) break;
    return fail(df11::Error::Io, "<stdout>", std::string("write failed: ") + std::strerror(errno));
  }
  std::vector<uint8_t> buf(size_t{1} << 20);
  for (;;) {
    if (df11::interrupted()) return interrupted("<stdout>");
    const ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n == 0) return df11::Status::Ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(df11::Error::Io, path, std::string("read failed: ") + std::strerror(errno));
    }
    df11::Status s = write_all(STDOUT_FILENO, buf.data(), static_cast<size_t>(n), "<stdout>", &gone);
    if (!s.ok()) return s;
    if (gone) {
      *end = CopyEnd::ReaderGone;
      return df11::Status::Ok();
    }
  }
}

bool stdout_reader_gone() {
  // The write end of a pipe whose readers have all gone polls as POLLERR.
  struct pollfd p {STDOUT_FILENO, 0, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) s.replace(pos, from.size(), to);
}

}  // namespace df11cli
