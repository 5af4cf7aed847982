// Runs the per-file work of a model directory: one file after another at
// -T1, several files at once (each with its share of the threads) above.
#pragma once
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "df11.h"

namespace df11 {

class FilePool;

// The threads of one file of a directory, asked again before each tensor. A
// file starts with its share (the Options::threads its task is given). Once
// every file has started, the threads of files that finish are handed to the
// files still running (FilePool), which take them at their next tensor: the
// last files of a directory do not finish on the one or two threads they
// started with while the others idle. A grant never shrinks. Only the file's
// task calls it, from the thread that runs the task.
class ThreadGrant {
 public:
  explicit ThreadGrant(unsigned threads) : threads_(threads) {}  // a fixed count
  explicit ThreadGrant(FilePool& pool) : pool_(&pool) {}         // FilePool::start gives its count
  ThreadGrant(const ThreadGrant&) = delete;
  ThreadGrant& operator=(const ThreadGrant&) = delete;
  // The count for the next tensor: the threads held so far, plus any handed
  // to this file since.
  unsigned threads();

 private:
  friend class FilePool;
  unsigned threads_ = 0;
  unsigned pending_ = 0;  // handed over, not yet taken (under the pool's lock)
  FilePool* pool_ = nullptr;
};

// The threads of a directory's files in flight (run_file_tasks). While files
// wait to start, the threads of a file that finishes stay idle for the next
// one to start. Once none waits (close()), idle threads, and those of each
// file that finishes, are split evenly among the files still running, once:
// a file that asks before every small tensor gets no more than one that asks
// rarely. Threads are only moved, never added: a hand-out never takes the
// count in use past T.
class FilePool {
 public:
  // shares = false: every file keeps the count it started with.
  FilePool(unsigned threads, bool shares) : all_(threads), shares_(shares) {}
  // `g` (ThreadGrant(*this), kept in place until release) starts with
  // `threads`, or with 0 the threads idle now (at least one).
  void start(ThreadGrant& g, unsigned threads);
  void release(ThreadGrant& g);
  void close();  // no file waits to start any more
  unsigned in_use();

 private:
  friend class ThreadGrant;
  void hand_out();  // under mu_
  std::mutex mu_;
  const unsigned all_;
  const bool shares_;
  unsigned in_use_ = 0;
  bool waiting_ = true;
  std::vector<ThreadGrant*> running_;
};

// Does file i with the options it is given (its starting thread count and a
// progress callback of its own, which may be called from a worker thread)
// and its ThreadGrant, to ask before each tensor how many threads it has.
using FileTask = std::function<Status(size_t i, const Options& o, ThreadGrant& threads)>;

// Runs task(i) for every i < sizes.size() (sizes[i]: the file's bytes, for
// the progress total and for scheduling). With resolve_threads(opt.threads)
// == 1 (or one file) the files run in order on the calling thread with all
// threads, as before. Otherwise up to F = min(files, max(1, T / 2)) files run
// at once, the largest first. The S = min(F, files of 64 MiB or more)
// largest files share the T threads by size (at least one each; each thread
// to the file with the most bytes per thread); small files that start with
// them get the smallest of those shares, and a file that starts when another
// has finished gets the threads then idle (at least one). So the threads in
// use stay about T, and the memory that of T threads (small files come and
// go within milliseconds). Once no file is left to start, threads freed by
// finished files go to the files still running (FilePool, ThreadGrant).
// opt.progress is called from the calling thread
// only, with the sum of all files' progress. After a failure no file with a
// larger index starts, and every file with a smaller one still runs, so the
// returned error is the failing file of smallest index whatever the timing
// (a run stops early only through interrupted()). `ran` (optional) gets, per
// file, whether its task ran.
Status run_file_tasks(const std::vector<uint64_t>& sizes, const Options& opt, const FileTask& task,
                      std::vector<bool>* ran = nullptr);

// The same with one worker per entry of `devices` (verify --device cuda:all):
// up to devices.size() files at once, each run with o.device set to its
// worker's entry, so a device never has two files of this run at once; each
// file gets max(1, T / files in flight) threads. Order of start, error choice
// and progress are those of run_file_tasks.
Status run_file_tasks_on(const std::vector<std::string>& devices, const std::vector<uint64_t>& sizes,
                         const Options& opt, const FileTask& task, std::vector<bool>* ran = nullptr);

}  // namespace df11
