// Runs the per-file work of a model directory: one file after another at
// -T1, several files at once (each with its share of the threads) above.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "df11.h"

namespace df11 {

struct FilePool;  // dir_tasks.cpp

// The threads of one file of a directory, asked again before each tensor. A
// file starts with its share (the Options::threads its task is given). Once
// every file has started, the threads that finished files leave idle are
// shared among the files still running, which take them at their next
// tensor: the last files of a directory do not finish on the one or two
// threads they started with while the others idle. Only the file's own
// task calls it (any of its threads, one at a time).
class ThreadGrant {
 public:
  explicit ThreadGrant(unsigned threads) : threads_(threads) {}  // a fixed count
  ThreadGrant(const ThreadGrant&) = delete;
  ThreadGrant& operator=(const ThreadGrant&) = delete;
  // The count for the next tensor: the threads held so far, plus any taken now.
  unsigned threads();

 private:
  friend struct FilePool;
  ThreadGrant(unsigned threads, FilePool* pool) : threads_(threads), pool_(pool) {}
  unsigned threads_;
  FilePool* pool_ = nullptr;
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
// finished files go to the files still running (ThreadGrant), so the threads
// in use never exceed T. opt.progress is called from the calling thread
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
