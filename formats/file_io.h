// RAII files for the readers and writers: read-only mappings, and output
// files that appear atomically (temp file + rename) or not at all.
#pragma once
#include <chrono>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "df11.h"

namespace df11 {

class BehindQueue;

// Opens `path` (links followed) read-only if it is a regular file, without
// blocking on a FIFO: the descriptor (and the size and mtime of its one
// fstat in *size and *mtime_ns), or -1 and *why ("cannot open: ...", "not a
// regular file"). Every input file is opened through it.
int open_regular_file(const std::string& path, std::string* why, uint64_t* size = nullptr,
                      int64_t* mtime_ns = nullptr);
// The whole of a small regular file (a manifest, a config.json) in *text;
// false and *why (as open_regular_file's, "read failed: ...", or "is larger
// than N bytes" past max_bytes) otherwise.
bool read_regular_file(const std::string& path, std::string* text, std::string* why,
                       uint64_t max_bytes = UINT64_MAX);

// An input path (links followed) exists: Ok, and whether it is a directory
// (is_dir may be null). Otherwise Io with the real cause: "no such file or
// directory", or the error's own text (a link loop, a name too long, a
// directory that cannot be searched), never a guess.
Status stat_input(const std::string& path, bool* is_dir);

// Read-only mapping of a whole file (empty files map to nullptr, size 0).
// Anything but a regular file is refused at once (open_regular_file).
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  Status open(const std::string& path);
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Drop the pages of [offset, offset+len) from this process (they stay in
  // the page cache), so streaming a large file keeps memory flat.
  void release(uint64_t offset, uint64_t len) const;
  void will_need(uint64_t offset, uint64_t len) const;
  // Copies [offset, offset + len) into dst with pread(2). Streaming readers
  // use this rather than the mapping: a copy into a small reused buffer costs
  // less than faulting the mapping's pages in and dropping them again, and
  // the process's memory stays at the buffer's size. Thread-safe.
  Status read(uint64_t offset, uint64_t len, void* dst) const;
  // Io "file shrank while being read" unless the file still holds at least
  // `end` bytes (fstat): loads from the mapping past the file's end are SIGBUS.
  // `what` ("tensor 'x'") goes before the reason in the message.
  Status check_size(uint64_t end, const std::string& what = "") const;
  // Io "file changed while being read" if its size or modification time
  // differ from what they were at open() (fstat, as tar(1) checks):
  // another process wrote to it meanwhile, so what was read may be a mix of
  // two versions. Callers check it after their last read and before they
  // commit an output. A write within the clock tick of open() can go unseen
  // where the file system's timestamps are coarse.
  Status check_unchanged() const;
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
  int64_t mtime_ns_ = 0;  // at open(), for check_unchanged
  int guard_ = -1;                        // the mapping's fault_guard slot
  std::string path_;
};

// A file written under a temporary name in the target's directory and renamed
// into place by commit(). Destroyed uncommitted, it removes the temporary.
class AtomicOutputFile {
 public:
  AtomicOutputFile();
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;
  // Fails with OutputIsLink if `path` is a symlink, OutputExists if it
  // exists and !overwrite.
  Status open(const std::string& path, bool overwrite);
  // The output gets the permission bits of the file `src` (its input), less
  // the umask, as cp(1) and zstd keep them: a private file stays private, a
  // script keeps its execute bit. Without this call, 0644 less the umask.
  void keep_mode_of(const std::string& src);
  // For several threads filling one file: pwrite()s into one file run one at
  // a time (the inode lock), so the page cache of a large output fills on one
  // thread. Stores into a shared mapping do not take that lock. Call it after
  // open() with the output's final size, or an estimate of it where that is
  // not known yet (compress), followed by set_final_size() once it is: the
  // temporary is extended to `size` (sparse) and mapped; pieces beyond it go
  // through pwrite(2). pwrite() then still uses pwrite(2) while no
  // other thread is inside it (cheaper per byte than page faults); a piece
  // that would wait instead has its pages prefaulted with
  // MADV_POPULATE_WRITE (Linux 5.14), is copied in, and its pages are
  // dropped from the process again, so memory stays bounded by the pieces in
  // flight. A page that cannot be allocated (a full disk, a quota) makes
  // madvise fail where a plain store would raise SIGBUS; that piece then
  // goes through pwrite(2), which reports the file system's own error. Where
  // the mapping or the prefault is not available the file quietly stays in
  // pwrite mode: callers need not know which mode they got; so does a file
  // system that is not tmpfs, ext4 or XFS (see the definition). Call it
  // before any write and before start_writer(). Returns whether the file is
  // mapped. pwrite_first = false maps every piece (tests).
  bool map_for_writers(uint64_t size, bool pwrite_first = true);
  // After the last write: waits for queued writes, then cuts (or extends)
  // the file to `size`, for a file mapped with an estimate of its size.
  Status set_final_size(uint64_t size);
  Status write(const void* data, uint64_t size);
  Status write_zeros(uint64_t size);
  // Thread-safe; one pwrite at a time enters the kernel (see write_mu_;
  // write() and write_zeros() are for one thread and do not take it).
  // Mapped (map_for_writers), pieces are stored in parallel.
  Status pwrite(const void* data, uint64_t size, uint64_t offset);
  uint64_t offset() const { return offset_; }
  const std::string& temp_path() const { return temp_; }
  Status commit();  // fsync-free rename; no-clobber unless overwrite
  void discard();

  void seek(uint64_t offset);  // next write() goes here
  // Asynchronous writes (as zstd's async I/O). Copies the bytes into one of a few reused buffers and queues them for the
  // writer thread (waiting while every buffer is in flight), so a coder can
  // reuse its own buffer at once and the kernel's page-cache copy runs beside
  // the coding in memory bounded by the pool. Thread-safe once start_writer()
  // has run. Returns an earlier
  // queued write's error, if any.
  Status pwrite_behind(const void* data, uint64_t size, uint64_t offset);
  // Starts the writer thread; call it before several threads use pwrite_behind.
  void start_writer();
  Status flush();  // waits for queued writes; the first error, if any

 private:
  std::unique_ptr<BehindQueue> writer_;  // pwrite_behind's thread, once started
  Status io_error(const char* what, int err) const;
  Status pwrite_fd(const void* data, uint64_t size, uint64_t offset);
  Status pwrite_locked(const void* data, uint64_t size, uint64_t offset);  // write_mu_ held
  Status store_mapped(const void* data, uint64_t size, uint64_t offset);
  void unmap();
  // Writes into one file are serialised by the file system (the inode lock)
  // whatever the thread count; 16 threads contending for it inside the kernel
  // burnt 7 s of system time on a 1.92 GB shard, for no gain in wall time.
  // Waiting here instead costs nothing (PERFORMANCE.md, "Many cores, round 3").
  std::mutex write_mu_;
  int fd_ = -1;
  uint8_t* map_ = nullptr;  // map_for_writers: the whole temporary, map_size_ bytes
  int map_guard_ = -1;      // its fault_guard slot
  uint64_t map_size_ = 0;
  bool pwrite_first_ = true;
  std::string path_, temp_;
  bool overwrite_ = false;
  uint64_t offset_ = 0;
  bool seek_pending_ = false;  // seek() moved offset_; the descriptor follows at the next write()
};

// Set by SIGINT/SIGTERM/SIGHUP (see install_interrupt_handlers); long loops poll it
// and unwind with Error::Interrupted so that RAII removes temporaries.
bool interrupted() noexcept;
Status interrupted_status(const std::string& label);

Status make_status(Error e, const std::string& label, const std::string& what);

// Runs f() (one public operation on `label`), returning the out-of-memory
// exceptions that reach it as OutOfMemory naming the input: a refused thread
// (ThreadStartError) or std::bad_alloc. Unwinding has removed the temporary
// output by then.
template <class F>
Status out_of_memory_as_status(const std::string& label, F&& f) {
  try {
    return f();
  } catch (const ThreadStartError& e) {
    return make_status(Error::OutOfMemory, label, e.what());
  } catch (const std::bad_alloc&) {
    return make_status(Error::OutOfMemory, label, "out of memory");
  }
}

// The process's umask, read without changing it (new files and directories
// get the mode open(2) and mkdir(2) would give them).
mode_t process_umask();

// Writing never follows a link: a symlink at `path` (an output file, or an
// output directory itself) fails with OutputIsLink, with or without -f, so
// that df11 neither writes through it nor silently replaces it. A device,
// FIFO or socket there fails with OutputNotRegular, with or without -f: the
// atomic rename would replace the node itself (as root, `-o /dev/null -f`
// would put a file in place of /dev/null), and a reader of a FIFO would wait
// forever. Pipes are written through `-o -`.
Status refuse_special_output(const std::string& path);

// The fixed part of the hidden temporary name that an output named
// `filename` is written under, beside it: "." + filename + ".df11tmp-",
// with filename cut so that the whole name, with the six characters
// mkstemp/mkdtemp add, fits in 255 bytes (NAME_MAX): a valid output name of
// up to 255 bytes still gets a valid temporary.
std::string temp_name_prefix(const std::string& filename);
// Whether a file or folder name is one of those temporaries (or the ".old"
// name an output being replaced takes for a moment): what a df11 run killed
// with SIGKILL leaves behind.
bool is_df11_temporary(const std::string& name);

// The input is never modified, even with -f (zstd refuses the same): fails
// with Usage, naming `out`, when `out` is `in` (also through another hard
// link or a path that resolves to it), when replacing `out` would remove `in`
// (`out` is a directory above it), or when `out` lies inside the input
// directory. A symlink at `out` is left to refuse_special_output.
Status refuse_output_over_input(const std::string& in, const std::string& out);

// Copies a file byte for byte into a new file at `to` that appears atomically.
// Copies `from` to `to` through a temporary renamed into place, keeping the
// mode. The file is read once, with pread(2) in pieces (a file cut short
// meanwhile is an error, not SIGBUS), and sha256_hex, when given, receives
// the SHA-256 of exactly the bytes written: a file changed meanwhile cannot
// be copied as one version and hashed as another, and it is refused
// (MappedFile::check_unchanged) before the rename.
// copied_size, when given, receives the size of what was copied (the size
// of the file as it was opened, not from an earlier stat).
Status copy_file_atomic(const std::string& from, const std::string& to, bool overwrite,
                        std::string* sha256_hex = nullptr, uint64_t* copied_size = nullptr);
// The SHA-256 (lowercase hex) of a file, read as copy_file_atomic reads it.
Status hash_file(const std::string& path, std::string* hex);

// Seconds of wall time since t0 (reports).
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace df11
