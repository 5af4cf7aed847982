// Single-file compress / decompress / verify / info.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <filesystem>
#include <thread>

#include "container_layout.h"
#include "behind_queue.h"
#include "container_writer.h"
#include "parallel.h"
#include "read_ahead.h"
#include "dir_tasks.h"
#include "file_digest.h"
#include "file_io.h"
#include "gpu_verify.h"
#include "ops.h"
#include "safetensors_header.h"
#include "tensor_stats.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status check_file_output(const std::string& out, bool overwrite) {
  AtomicOutputFile probe;  // its destructor removes the temporary
  return probe.open(out, overwrite);
}

std::string default_output_path(const std::string& in, bool compressing) {
  std::string base = in;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  // "." or "..": the output goes beside the directory they name, as "DIR.df11"
  // (appending to "." would put a hidden "..df11" inside the input).
  const std::string last = fs::path(base).filename().string();
  if (last == "." || last == "..") {
    std::error_code ec;
    const fs::path c = fs::weakly_canonical(base, ec);
    if (!ec && c.has_filename()) base = c.string();
  }
  if (compressing) {
    // A directory is DIR.df11 whatever its name, so that decompress restores
    // DIR (a directory "x.safetensors" went to x.df11, and came back as x).
    if (ends_with(base, ".safetensors") && !fs::is_directory(in)) return base.substr(0, base.size() - 12) + ".df11";
    return base + ".df11";
  }
  if (ends_with(base, ".df11")) {
    const std::string stem = base.substr(0, base.size() - 5);
    return fs::is_directory(in) ? stem : stem + ".safetensors";
  }
  return base + (fs::is_directory(in) ? ".restored" : ".safetensors");
}

namespace {

// Workers on one output file from which it is mapped, in decompress and
// compress alike (AtomicOutputFile::map_for_writers: pwrite while no other
// worker is in it, the mapping for the rest). Measured on 16-core Xeons,
// /dev/shm, three runs each against pwrite alone. Decompress (PERFORMANCE.md,
// "Many cores, round 4"): a 1.92 GB shard at -T4 0.53-0.64 s against
// 0.58-0.76, at -T8 0.39-0.43 against 0.58-0.68; a 4-shard directory at -T16
// (3 or 5 workers per shard) 0.58-0.67 against 0.69-0.80. Mapping every
// store, without pwrite first, was slower than pwrite alone for that
// directory (faults cost more CPU than copies), and from 2 workers it gained
// nothing more. Compress ("round 5"): the shard at -T8 0.54-0.57 s against
// 0.60-0.65, at -T16 0.51-0.53 against 0.61-0.62, -T4 unchanged.
constexpr unsigned kMappedWriters = 4;

// SHA-256 of a whole file on a thread of its own (no thread when sha is null;
// ThreadStartError when the system refuses one).
class BackgroundFileHash {
 public:
  BackgroundFileHash(const MappedFile& f, Sha256* sha) {
    if (sha) thread_ = start_thread([this, &f, sha] { status_ = run(f, sha, cancelled_); });
  }
  ~BackgroundFileHash() {
    cancel();
    join();
  }
  // The hash is no longer wanted (the coding failed): stop within two pieces
  // (the reader checks; pieces already read are still hashed).
  void cancel() { cancelled_ = true; }
  Status join() {
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  // A reader thread copies piece k + 1 out of the page cache while piece k is
  // hashed, so this thread does nothing but SHA-256: in a directory at high
  // -T the largest file's hash is the critical path, and the copy was a fifth
  // of it (PERFORMANCE.md, "Many cores, round 3").
  static Status run(const MappedFile& f, Sha256* sha, const std::atomic<bool>& cancelled) {
    constexpr uint64_t kPiece = uint64_t{4} << 20;
    const uint64_t pieces = div_ceil(f.size(), kPiece);
    if (pieces == 0) return Status::Ok();
    // On this thread nothing may throw (it would be std::terminate): what
    // can fail, the buffers and the reader thread, becomes a status.
    try {
      std::vector<uint8_t> buf[2];
      for (auto& b : buf) b.resize(std::min(kPiece, f.size()));
      ReadAhead ahead(pieces, [&](uint64_t k, int slot) {
        if (interrupted()) return interrupted_status(f.path());
        if (cancelled) return Status{Error::Interrupted, "cancelled"};  // never reported: the coding's error is
        return f.read(k * kPiece, std::min(kPiece, f.size() - k * kPiece), buf[slot].data());
      });
      for (uint64_t k = 0; k < pieces; ++k) {
        Status s = ahead.get(k);
        if (!s.ok()) return s;
        sha->update(buf[k & 1].data(), std::min(kPiece, f.size() - k * kPiece));
        ahead.release(k);
      }
    } catch (const std::bad_alloc& e) {  // ThreadStartError included
      return make_status(Error::OutOfMemory, f.path(), std::string("SHA-256: ") + e.what());
    }
    return Status::Ok();
  }
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
  Status status_;
};

// The SHA-256 of a restored file (directory manifests): the header now, the
// rest on a thread of its own, fed with copies of the bytes in order. Each
// push is tagged with its offset in the file, which lets a small tensor's
// piece join the queue's last item. Does nothing when no hash is asked for.
class BackgroundSha {
 public:
  BackgroundSha(Sha256* sha, const std::vector<uint8_t>& head) : at_(head.size()) {
    if (!sha) return;
    sha->update(head.data(), head.size());
    queue_ = std::make_unique<BehindQueue>([sha](const uint8_t* p, uint64_t n, uint64_t) {
      sha->update(p, n);
      return Status::Ok();
    });
  }
  Status push(const uint8_t* p, uint64_t n) {
    at_ += n;
    return queue_ ? queue_->push(p, n, at_ - n) : Status::Ok();
  }
  Status finish() { return queue_ ? queue_->finish() : Status::Ok(); }

 private:
  std::unique_ptr<BehindQueue> queue_;
  uint64_t at_;
};

}  // namespace

Status compress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                    Sha256* sha, uint64_t* original_xxh64, ThreadGrant* grant) {
  ThreadGrant own(resolve_threads(opt.threads));
  if (!grant) grant = &own;
  MappedFile file;
  Status s = file.open(in);
  if (!s.ok()) return s;
  StHeader h;
  s = parse_safetensors(file.data(), file.size(), in, &h);
  if (!s.ok()) {
    const Status changed = file.check_unchanged();  // cut short or rewritten while parsed
    return changed.ok() ? s : changed;
  }
  AtomicOutputFile of;
  s = of.open(out, opt.overwrite);
  if (!s.ok()) return s;
  of.keep_mode_of(in);
  // From four workers, as in decompress, pass 2's windows that would wait for
  // another's pwrite(2) go into a shared mapping of the output. Its size is
  // known only at the end: the input's size is the estimate (a file worth
  // compressing is smaller; bytes past it go through pwrite), and
  // write_container sets the real size.
  if (grant->threads() >= kMappedWriters) of.map_for_writers(file.size());
  // The SHA-256 of the input (directory manifests) is computed on a thread of
  // its own, reading the file with pread, while the coding runs.
  BackgroundFileHash hasher(file, sha);
  FileReport local;
  FileReport* r = rep ? rep : &local;
  s = write_container(in, file, h, of, opt, r, original_xxh64, *grant);
  if (!s.ok()) hasher.cancel();
  const Status hs = hasher.join();
  // The coding reads tensors twice (checksum, then code), the hash once more:
  // an input rewritten meanwhile would give a container that does not decode,
  // or decodes to neither version. That, when it happened, is the error.
  if (Status changed = file.check_unchanged(); !changed.ok()) return changed;
  if (!s.ok()) return s;
  if (!hs.ok()) return hs;
  if (opt.verify_after) {
    VerifyReport vr;
    Options vo = opt;
    vo.device = "cpu";
    s = verify_one(of.temp_path(), "", out, vo, &vr, nullptr, nullptr, grant);
    if (!s.ok()) return s;
    if (!vr.failures.empty())
      return make_status(Error::VerifyMismatch, out, "--verify failed: " + vr.failures.front());
  }
  return of.commit();
}

Status decompress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                      Sha256* sha, const ManifestEntry* entry, ThreadGrant* grant) {
  ThreadGrant own(resolve_threads(opt.threads));
  if (!grant) grant = &own;
  std::unique_ptr<Reader> reader;
  Status s = Reader::open(in, &reader);
  if (!s.ok()) return s;
  if (entry) {
    s = check_container(*reader, *entry, in);
    if (!s.ok()) return s;
  }
  AtomicOutputFile of;
  s = of.open(out, opt.overwrite);
  if (!s.ok()) return s;
  of.keep_mode_of(in);
  // From four workers on one file, windows that would wait for another's
  // pwrite(2) go into a shared mapping of the file instead, where the page
  // cache fills in parallel. (A directory's file that gets more threads
  // later keeps the mode it started in.)
  if (grant->threads() >= kMappedWriters) of.map_for_writers(reader->original_size());
  const std::vector<uint8_t> head = reader->original_header();
  FileDigest digest(head.data(), head.size());
  s = of.write(head.data(), head.size());
  if (!s.ok()) return s;
  // The SHA-256 (directory manifests) runs on a thread of its own, fed with
  // copies of the restored bytes in order.
  BackgroundSha hasher(sha, head);
  of.start_writer();
  uint64_t done = head.size();
  const auto& ts = reader->tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    if (interrupted()) return interrupted_status(in);
    // Windows go to their place through the writer thread's buffers; the
    // in-order stage feeds the hash. A failed checksum discards the temporary.
    const uint64_t at = head.size() + ts[i].orig_offset;
    const unsigned threads = grant->threads();
    // One worker hands its windows to the writer thread (the page-cache copy
    // overlaps decoding); several write their own (AtomicOutputFile::pwrite:
    // one at a time, or in parallel into the mapping), without a copy into
    // the writer's buffers. A writer thread at every -T gained nothing on a
    // directory and cost memory (PERFORMANCE.md, "Many cores, round 3").
    // A tensor that one thread decodes whatever -T (Reader::decode_workers:
    // a small or non-BF16 one) counts as one worker: written directly, its copy waited for the
    // decode, and -T2 was slower than -T1 on a file of small tensors.
    const bool behind = reader->decode_workers(i, threads) == 1;
    s = reader->decode_tensor_stream(
        i, threads,
        [&](uint64_t off, const uint8_t* p, uint64_t n) {
          return behind ? of.pwrite_behind(p, n, at + off) : of.pwrite(p, n, at + off);
        },
        [&](const uint8_t* p, uint64_t n) {
          done += n;
          return hasher.push(p, n);
        });
    if (!s.ok()) {
      // A checksum that fails because another process rewrote the container
      // is not damage: the change is the error to report.
      const Status changed = reader->check_unchanged();
      return changed.ok() ? s : changed;
    }
    digest.add_tensor(ts[i].orig_xxh64);
    if (opt.progress) opt.progress(done, reader->original_size());
  }
  if (s = hasher.finish(); !s.ok()) return s;
  // A container rewritten meanwhile fails its checksums (above) as if it were
  // damaged, or restores a mix of two versions: say what happened.
  if (s = reader->check_unchanged(); !s.ok()) return s;
  if (digest.digest() != reader->original_xxh64())
    return make_status(Error::Df11FileChecksum, in, "digest of the restored file differs from the header");
  if (rep) {
    rep->original_bytes = reader->original_size();
    std::error_code size_ec;
    rep->stored_bytes = fs::file_size(in, size_ec);  // for the report only
  }
  return of.commit();
}

Status verify_one(const std::string& in, const std::string& against, const std::string& label, const Options& opt,
                  VerifyReport* rep, Sha256* sha, const ManifestEntry* entry, ThreadGrant* grant) {
  ThreadGrant own(resolve_threads(opt.threads));
  if (!grant) grant = &own;
  std::unique_ptr<Reader> reader;
  Status s = Reader::open(in, &reader);
  if (!s.ok()) return s;
  if (const std::string why = entry ? container_mismatch(*reader, *entry) : ""; !why.empty())
    rep->failures.push_back(label + ": " + why);
  MappedFile orig;
  if (!against.empty()) {
    s = orig.open(against);
    if (!s.ok()) return s;
  }
  const auto& ts = reader->tensors();
  const std::vector<uint8_t> head = reader->original_header();
  FileDigest digest(head.data(), head.size());
  // The SHA-256 (directory manifests) runs on a thread of its own.
  BackgroundSha hasher(sha, head);
  const uint64_t failures_before = rep->failures.size();
  bool compare = !against.empty();
  if (compare) {
    if (orig.size() != reader->original_size()) {
      rep->failures.push_back(label + ": size differs from " + against + " (" + std::to_string(reader->original_size()) +
                              " vs " + std::to_string(orig.size()) + " bytes)");
      compare = false;
    } else if (std::memcmp(orig.data(), head.data(), head.size()) != 0) {
      rep->failures.push_back(label + ": safetensors header differs from " + against);
    }
  }
  const uint64_t data_start = head.size();

  GpuVerifier gpu;
  s = gpu.init(opt.device, rep);
  if (!s.ok()) return s;

  std::vector<uint8_t> buf;  // GPU path only: whole tensors
  for (size_t i = 0; i < ts.size(); ++i) {
    if (interrupted()) return interrupted_status(in);
    const ReaderTensor& t = ts[i];
    Status ts_status;
    std::atomic<bool> differs{false};
    const uint64_t orig_at = data_start + t.orig_offset;
    // Compares one decoded window with the original, read with pread into a
    // buffer of the calling worker's own. An original that cannot be read is
    // an I/O error, not a difference: it stops the decode.
    auto check = [&](uint64_t off, const uint8_t* p, uint64_t n) -> Status {
      if (!compare || differs) return Status::Ok();
      thread_local std::vector<uint8_t> theirs;
      if (theirs.size() < n) theirs.resize(n);
      Status r = orig.read(orig_at + off, n, theirs.data());
      if (!r.ok()) return r;
      if (std::memcmp(p, theirs.data(), n) != 0) differs = true;
      return Status::Ok();
    };
    auto hash_sha = [&](const uint8_t* p, uint64_t n) { return hasher.push(p, n); };
    if (gpu.active() && t.encoding == kBf16Huffman) {
      if (buf.size() < t.orig_size) buf.resize(t.orig_size);
      ts_status = gpu.decode(*reader, i, buf.data(), rep);
      reader->release_mapped(i);  // the upload read the payload through the mapping
      if (ts_status.ok()) ts_status = check(0, buf.data(), t.orig_size);
      if (ts_status.ok()) ts_status = hash_sha(buf.data(), t.orig_size);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      ts_status = reader->decode_tensor_stream(i, grant->threads(), check, hash_sha);
      if (t.encoding == kBf16Huffman) {
        rep->decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rep->decoded_bytes += t.orig_size;
      }
    }
    // Reading or resources failing is not a verdict on the data: stop there
    // (OutOfMemory: a decoding thread the system refused).
    if (ts_status.code == Error::Io || ts_status.code == Error::Interrupted || ts_status.code == Error::OutOfMemory)
      return ts_status;
    ++rep->tensors_checked;
    if (!ts_status.ok()) rep->failures.push_back(label + ": tensor '" + t.name + "': " + error_name(ts_status.code));
    // A failed tensor contributes a hash that cannot match, so the file check
    // fails too (and the SHA-256, which then misses bytes, is not compared).
    digest.add_tensor(ts_status.ok() ? t.orig_xxh64 : ~t.orig_xxh64);
    if (ts_status.ok() && differs) rep->failures.push_back(label + ": tensor '" + t.name + "' differs from " + against);
    if (opt.progress) opt.progress(data_start + t.orig_offset + t.orig_size, reader->original_size());
  }
  if (s = hasher.finish(); !s.ok()) return s;
  if (rep->failures.size() == failures_before && digest.digest() != reader->original_xxh64()) {
    rep->failures.push_back(label + ": XXH64 of the restored file differs (Df11FileChecksum)");
  }
  // A file rewritten by another process while it was checked gets no
  // verdict: its failures (or its pass) are of a mix of two versions.
  if (s = reader->check_unchanged(); s.ok() && compare) s = orig.check_unchanged();
  if (!s.ok()) {
    rep->failures.resize(failures_before);
    return s;
  }
  ++rep->files_checked;
  return Status::Ok();
}

Status info_one(const std::string& in, const Options& opt, FileReport* rep) {
  std::unique_ptr<Reader> reader;
  Status s = Reader::open(in, &reader);
  if (!s.ok()) return s;
  const unsigned threads = resolve_threads(opt.threads);
  rep->original_bytes = reader->original_size();
  std::error_code size_ec;
  rep->stored_bytes = fs::file_size(in, size_ec);  // a file removed meanwhile is check_unchanged's to report
  for (size_t i = 0; i < reader->tensors().size(); ++i) {
    const ReaderTensor& t = reader->tensors()[i];
    TensorReport tr;
    tr.name = t.name;
    tr.dtype = t.dtype;
    tr.shape = t.shape;
    tr.original_bytes = t.orig_size;
    tr.stored_bytes = t.payload_size;
    tr.encoding = t.encoding == kBf16Huffman ? "bf16-huffman" : t.encoding == kZstd ? "zstd" : "raw";
    uint64_t elems = 1;
    for (uint64_t d : t.shape) elems *= d;
    tr.bits_per_weight = elems ? 8.0 * static_cast<double>(t.payload_size) / static_cast<double>(elems) : 0.0;
    if (t.encoding == kBf16Huffman) {
      // The histogram decodes the stream through the mapping.
      if (s = reader->check_mapped(i); !s.ok()) return s;
      Histogram hist;
      const Error e = decode_exponent_histogram(t.bf16, hist, threads);
      reader->release_mapped(i);  // info over a whole file in flat memory
      if (e != Error::Ok) {
        if (s = reader->check_unchanged(); !s.ok()) return s;  // cut short or rewritten: zeros were read
        return make_status(e, in, "tensor '" + t.name + "': exponent stream does not decode");
      }
      tr.exponent_entropy = entropy_bits(hist);
      tr.longest_code = max_code_length(t.bf16.lengths);
    }
    rep->tensors.push_back(std::move(tr));
  }
  // Statistics of a file that changed meanwhile describe neither version.
  return reader->check_unchanged();
}

}  // namespace df11
