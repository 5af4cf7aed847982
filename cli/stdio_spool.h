// "-" on the command line: standard input or output, as in zstd. The library
// works on paths (it maps inputs, and renames outputs into place), so a pipe
// is spooled through a private temporary directory in $TMPDIR (default /tmp)
// that is removed on every exit path: success, error, SIGINT, SIGTERM or SIGHUP.
#pragma once
#include <string>
#include <vector>

#include "df11.h"

namespace df11cli {

inline bool is_stdio(const std::string& arg) { return arg == "-"; }

// A named pipe given as IN: process substitution (`df11 compress <(curl ...)`
// names /dev/fd/63), /dev/stdin on a pipe, or a mkfifo. It is read once, into
// the spool, as "-" is. (Devices and sockets stay refused by the library.)
bool is_fifo(const std::string& arg);

// A path that names a descriptor rather than a file: /dev/stdin, /dev/fd/N,
// /proc/PID/fd/N (/proc/self/fd/N). No output name can be made from it.
bool is_stream_path(const std::string& arg);

// Whether two input arguments would read one stream: "-" and /dev/stdin, or
// one pipe named twice. (A regular file named twice is fine.)
bool same_stream(const std::string& a, const std::string& b);

// How messages name an input stream: "<stdin>" for "-", else the path.
inline std::string stream_label(const std::string& arg) { return is_stdio(arg) ? "<stdin>" : arg; }

// zstd's rule: binary data is never written to (or read from) a terminal
// unless forced. Returns "" when allowed, else the message for a usage error.
std::string terminal_refusal(bool binary_out_to_stdout, bool stdout_is_terminal, bool binary_in_from_stdin,
                             bool stdin_is_terminal, bool force);

// The temporary directory; everything in it goes with the destructor.
class SpoolDir {
 public:
  SpoolDir() = default;
  ~SpoolDir();
  SpoolDir(const SpoolDir&) = delete;
  SpoolDir& operator=(const SpoolDir&) = delete;
  df11::Status create();  // idempotent
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  // How messages name the spool's copy of a stream: a failure to write it
  // (disk full, ulimit -f) is about $TMPDIR, not the pipe, e.g.
  // "<stdout> (its copy in $TMPDIR=/tmp)".
  std::string label(const std::string& stream) const { return stream + " (its copy in $TMPDIR=" + base_ + ")"; }

 private:
  std::string dir_, base_;
};

// A path the library can open for the data of the stream `arg` ("-" for
// standard input, or a FIFO's path). A regular file redirected to stdin
// (`< FILE`, at offset 0) is used in place; anything else (a pipe, a socket)
// is copied into spool/name first.
df11::Status stream_as_path(SpoolDir& spool, const std::string& arg, const std::string& name, std::string* path);

// The same for several streams at once (verify's container and --against),
// read as their data comes, whichever is ready: two pipes fed by one writer
// (`tee`), or by one script in either order, would deadlock if one were read
// to its end before the other was opened.
struct StreamSource {
  std::string arg;   // "-" or a FIFO's path
  std::string name;  // the spool file's name
  std::string path;  // out: what the library opens
};
df11::Status streams_as_paths(SpoolDir& spool, std::vector<StreamSource>& streams);

enum class CopyEnd { Done, ReaderGone };
// Copies a finished file to standard output. A reader that closed the pipe
// early (`| head`) is not an error: ReaderGone, and the caller ends quietly.
df11::Status copy_to_stdout(const std::string& path, CopyEnd* end);

// After everything was printed: true when stdout's reader is gone, in which
// case a failed write is not worth a message (`df11 info | head`).
bool stdout_reader_gone();

// Replaces every occurrence of `from` in s by `to` (spool paths in messages
// become <stdin> / <stdout>).
void replace_all(std::string& s, const std::string& from, const std::string& to);

}  // namespace df11cli
