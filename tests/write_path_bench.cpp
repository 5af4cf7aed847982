// Write-path microbenchmark (docs/PERFORMANCE.md, "Many cores"): how fast can
// T threads put S bytes into one file on this file system? pwrite into one
// file (Linux serialises buffered writes to one inode), into T files, memcpy
// into a shared mapping of a preallocated file (tried for decompress and
// reverted: the preallocation is as serial as the writes), into mappings of
// 64 MiB regions of a sparse file, into one sparse mapping prefaulted chunk by
// chunk with MADV_POPULATE_WRITE (one file, and four at once), and plain
// memcpy for scale. Usage: write_path_bench DIR BYTES T [T...]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

static double tv(const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; }
struct Meter {
  rusage r0; std::chrono::steady_clock::time_point t0;
  Meter() { getrusage(RUSAGE_SELF, &r0); t0 = std::chrono::steady_clock::now(); }
  void print(const char* what, int T, uint64_t S) {
    rusage r1; getrusage(RUSAGE_SELF, &r1);
    double w = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("%-14s T=%-3d wall %.3f s  user %.3f  sys %.3f  %.2f GB/s\n", what, T, w, tv(r1.ru_utime) - tv(r0.ru_utime),
           tv(r1.ru_stime) - tv(r0.ru_stime), S / w / 1e9);
    fflush(stdout);
  }
};
static constexpr uint64_t C = 2u << 20;

template <class F> void run(int T, F f) {
  std::vector<std::thread> th;
  for (int t = 0; t < T; ++t) th.emplace_back(f, t);
  for (auto& x : th) x.join();
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s DIR BYTES T [T...]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  uint64_t S = strtoull(argv[2], 0, 10) / C * C;
  std::vector<int> Ts;
  for (int i = 3; i < argc; ++i) Ts.push_back(atoi(argv[i]));
  int most = 1;
  for (int T : Ts) most = std::max(most, T);
  std::vector<std::vector<char>> bufs(most, std::vector<char>(C));  // one source buffer per thread
  for (auto& b : bufs) for (size_t i = 0; i < C; ++i) b[i] = char(i * 131 + 7);
  const uint64_t nch = S / C;
  for (int T : Ts) {
    std::string p = dir + "/wb.one";
    { // pwrite into one file, chunks interleaved over threads
      int fd = open(p.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
      Meter m;
      run(T, [&](int t) { for (uint64_t k = t; k < nch; k += T) if (pwrite(fd, bufs[t].data(), C, k * C) != (ssize_t)C) abort(); });
      m.print("pwrite-1file", T, S);
      close(fd); unlink(p.c_str());
    }
    { // T files, each written by its own thread
      Meter m;
      run(T, [&](int t) {
        std::string q = p + std::to_string(t);
        int fd = open(q.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
        for (uint64_t k = t; k < nch; k += T) if (write(fd, bufs[t].data(), C) != (ssize_t)C) abort();
        close(fd);
      });
      m.print("pwrite-Tfiles", T, S);
      for (int t = 0; t < T; ++t) unlink((p + std::to_string(t)).c_str());
    }
    { // fallocate + one shared mapping, memcpy interleaved
      Meter m;
      int fd = open(p.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0644);
      if (posix_fallocate(fd, 0, S) != 0) { printf("fallocate failed\n"); }
      char* map = (char*)mmap(nullptr, S, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) abort();
      run(T, [&](int t) { for (uint64_t k = t; k < nch; k += T) memcpy(map + k * C, bufs[t].data(), C); });
      munmap(map, S);
      close(fd);
      m.print("mmap-fallocate", T, S);
      unlink(p.c_str());
    }
    { // ftruncate (sparse) + mapping in 64 MiB windows per chunk group, unmapped when done
      Meter m;
      int fd = open(p.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0644);
      if (ftruncate(fd, S) != 0) abort();
      const uint64_t R = 64u << 20, nr = (S + R - 1) / R;
      std::atomic<uint64_t> next{0};
      run(T, [&](int t) {
        for (uint64_t r; (r = next.fetch_add(1)) < nr;) {
          uint64_t len = std::min(R, S - r * R);
          char* map = (char*)mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, r * R);
          if (map == MAP_FAILED) abort();
          for (uint64_t o = 0; o < len; o += C) memcpy(map + o, bufs[t].data(), std::min(C, len - o));
          munmap(map, len);
        }
      });
      close(fd);
      m.print("mmap-64M-regions", T, S);
      unlink(p.c_str());
    }
    // One sparse mapping of the whole file, each chunk prefaulted with
    // MADV_POPULATE_WRITE (a full disk comes back as EFAULT/ENOMEM from
    // madvise, not as SIGBUS at the store), then copied; "+dn" drops the
    // chunk's page-table entries after the copy (MADV_DONTNEED), as a
    // decompress that must keep its RSS bounded would. FILES files of S/FILES
    // bytes each, T threads spread over them (thread t writes file t % FILES).
    for (int files : {1, 4}) {
      for (bool drop : {false, true}) {
        if (files > T) continue;
        std::vector<int> fds(files);
        std::vector<char*> maps(files);
        const uint64_t per = S / files / C * C, nper = per / C;
        Meter m;
        for (int f = 0; f < files; ++f) {
          std::string q = p + std::to_string(f);
          fds[f] = open(q.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0644);
          if (fds[f] < 0 || ftruncate(fds[f], per) != 0) abort();
          maps[f] = (char*)mmap(nullptr, per, PROT_READ | PROT_WRITE, MAP_SHARED, fds[f], 0);
          if (maps[f] == MAP_FAILED) abort();
        }
        std::atomic<int> bad{0};
        run(T, [&](int t) {
          const int f = t % files;
          const int mates = (T - f + files - 1) / files, me = t / files;  // threads on file f, my rank
          for (uint64_t k = me; k < nper; k += mates) {
            char* at = maps[f] + k * C;
            if (madvise(at, C, MADV_POPULATE_WRITE) != 0) { bad = errno; return; }
            memcpy(at, bufs[t].data(), C);
            if (drop) madvise(at, C, MADV_DONTNEED);
          }
        });
        for (int f = 0; f < files; ++f) { munmap(maps[f], per); close(fds[f]); }
        char what[32];
        snprintf(what, sizeof what, "populate%s-%df", drop ? "+dn" : "", files);
        if (bad) printf("%s: madvise failed, errno %d\n", what, bad.load());
        m.print(what, T, per * files);
        for (int f = 0; f < files; ++f) unlink((p + std::to_string(f)).c_str());
      }
    }
    { // pwrite, FILES = 4 files, T threads spread over them (a directory decompress)
      if (T >= 4) {
        std::vector<int> fds(4);
        const uint64_t per = S / 4 / C * C, nper = per / C;
        Meter m;
        for (int f = 0; f < 4; ++f) fds[f] = open((p + std::to_string(f)).c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
        run(T, [&](int t) {
          const int f = t % 4, mates = (T - f + 3) / 4, me = t / 4;
          for (uint64_t k = me; k < nper; k += mates) if (pwrite(fds[f], bufs[t].data(), C, k * C) != (ssize_t)C) abort();
        });
        for (int f = 0; f < 4; ++f) close(fds[f]);
        m.print("pwrite-4f", T, per * 4);
        for (int f = 0; f < 4; ++f) unlink((p + std::to_string(f)).c_str());
      }
    }
    { // user-space copy only, for scale
      Meter m;
      run(T, [&](int t) { std::vector<char> d(64u << 20); for (uint64_t k = t; k < nch; k += T) memcpy(d.data() + (k * C) % (64u << 20), bufs[t].data(), C); });
      m.print("memcpy", T, S);
    }
  }
}
