// Single-file compress / decompress / verify / info.
#include <chrono>
#include <cstring>
#include <filesystem>

#include "container_layout.h"
#include "container_writer.h"
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

std::string default_output_path(const std::string& in, bool compressing) {
  std::string base = in;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (compressing) {
    if (ends_with(base, ".safetensors")) return base.substr(0, base.size() - 12) + ".df11";
    return base + ".df11";
  }
  if (ends_with(base, ".df11")) {
    const std::string stem = base.substr(0, base.size() - 5);
    return fs::is_directory(in) ? stem : stem + ".safetensors";
  }
  return base + (fs::is_directory(in) ? ".restored" : ".safetensors");
}

namespace {

// The restored file's digest (file_digest.h) and, optionally, its SHA-256.
struct RestoredHash {
  FileDigest digest;
  Sha256* sha;
  RestoredHash(const std::vector<uint8_t>& head, Sha256* s) : digest(head.data(), head.size()), sha(s) {
    if (sha) sha->update(head.data(), head.size());
  }
  // `xxh` is the decoded tensor's XXH64 (decode_tensor has checked it).
  void tensor(const uint8_t* p, uint64_t n, uint64_t xxh) {
    digest.add_tensor(xxh);
    if (sha) sha->update(p, n);
  }
};

}  // namespace

Status compress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                    Sha256* sha) {
  MappedFile file;
  Status s = file.open(in);
  if (!s.ok()) return s;
  StHeader h;
  s = parse_safetensors(file.data(), file.size(), in, &h);
  if (!s.ok()) return s;
  AtomicOutputFile of;
  s = of.open(out, opt.overwrite);
  if (!s.ok()) return s;
  if (sha) {
    // Hash before encoding: the encoder releases pages as it goes.
    for (uint64_t off = 0; off < file.size(); off += uint64_t{1} << 26) {
      if (interrupted()) return interrupted_status(in);
      const uint64_t n = std::min<uint64_t>(uint64_t{1} << 26, file.size() - off);
      sha->update(file.data() + off, n);
      file.release(off, n);
    }
  }
  FileReport local;
  FileReport* r = rep ? rep : &local;
  s = write_container(in, file, h, of, opt, r);
  if (!s.ok()) return s;
  if (opt.verify_after) {
    VerifyReport vr;
    Options vo = opt;
    vo.device = "cpu";
    s = verify_one(of.temp_path(), "", out, vo, &vr, nullptr);
    if (!s.ok()) return s;
    if (!vr.failures.empty())
      return make_status(Error::VerifyMismatch, out, "--verify failed: " + vr.failures.front());
  }
  return of.commit();
}

Status decompress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                      Sha256* sha) {
  std::unique_ptr<Reader> reader;
  Status s = Reader::open(in, &reader);
  if (!s.ok()) return s;
  // Declared before the output file: its writer thread may still read buf
  // while the file is destroyed on an error path.
  std::vector<uint8_t> buf;
  AtomicOutputFile of;
  s = of.open(out, opt.overwrite);
  if (!s.ok()) return s;
  const unsigned threads = resolve_threads(opt.threads);
  const std::vector<uint8_t> head = reader->original_header();
  RestoredHash hash(head, sha);
  s = of.write(head.data(), head.size());
  if (!s.ok()) return s;
  uint64_t done = head.size();
  const auto& ts = reader->tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    if (interrupted()) return interrupted_status(in);
    // buf is reused for this tensor: the writer thread must be done with it.
    s = of.flush();
    if (!s.ok()) return s;
    if (buf.size() < ts[i].orig_size) buf.resize(ts[i].orig_size);
    // Queued piece by piece as decoded, so the writer thread's page-cache
    // copy overlaps decoding; a failed checksum discards the temporary.
    s = reader->decode_tensor(i, buf.data(), threads, [&](const uint8_t* p, uint64_t n) {
      if (sha) sha->update(p, n);
      of.write_async(p, n);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    hash.digest.add_tensor(ts[i].orig_xxh64);
    done += ts[i].orig_size;
    if (opt.progress) opt.progress(done, reader->original_size());
  }
  if (hash.digest.digest() != reader->original_xxh64())
    return make_status(Error::Df11FileChecksum, in, "digest of the restored file differs from the header");
  if (rep) {
    rep->original_bytes = reader->original_size();
    rep->stored_bytes = fs::file_size(in);
  }
  return of.commit();
}

Status verify_one(const std::string& in, const std::string& against, const std::string& label, const Options& opt,
                  VerifyReport* rep, Sha256* sha) {
  std::unique_ptr<Reader> reader;
  Status s = Reader::open(in, &reader);
  if (!s.ok()) return s;
  MappedFile orig;
  if (!against.empty()) {
    s = orig.open(against);
    if (!s.ok()) return s;
  }
  const unsigned threads = resolve_threads(opt.threads);
  const auto& ts = reader->tensors();
  const std::vector<uint8_t> head = reader->original_header();
  RestoredHash hash(head, sha);
  const uint64_t failures_before = rep->failures.size();
  if (!against.empty()) {
    if (orig.size() != reader->original_size())
      rep->failures.push_back(label + ": size differs from " + against + " (" + std::to_string(reader->original_size()) +
                              " vs " + std::to_string(orig.size()) + " bytes)");
    else if (std::memcmp(orig.data(), head.data(), head.size()) != 0)
      rep->failures.push_back(label + ": safetensors header differs from " + against);
  }
  const uint64_t data_start = head.size();

  GpuVerifier gpu;
  s = gpu.init(opt.device, rep);
  if (!s.ok()) return s;

  std::vector<uint8_t> buf;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (interrupted()) return interrupted_status(in);
    const ReaderTensor& t = ts[i];
    if (buf.size() < t.orig_size) buf.resize(t.orig_size);
    Status ts_status;
    if (gpu.active() && t.encoding == kBf16Huffman) {
      ts_status = gpu.decode(*reader, i, buf.data(), rep);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      ts_status = reader->decode_tensor(i, buf.data(), threads);
      if (t.encoding == kBf16Huffman) {
        rep->decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rep->decoded_bytes += t.orig_size;
      }
    }
    ++rep->tensors_checked;
    if (!ts_status.ok()) {
      rep->failures.push_back(label + ": tensor '" + t.name + "': " + error_name(ts_status.code));
      // Keep the whole-file hash meaningful only when every tensor decoded.
      if (t.orig_size) std::memset(buf.data(), 0, t.orig_size);
    }
    // A failed tensor contributes a hash that cannot match, so the file check fails too.
    hash.tensor(buf.data(), t.orig_size, ts_status.ok() ? t.orig_xxh64 : ~t.orig_xxh64);
    // (buf.data() is null for an empty tensor: memcmp's pointers must not be.)
    if (!against.empty() && orig.size() == reader->original_size() && t.orig_size &&
        std::memcmp(buf.data(), orig.data() + data_start + t.orig_offset, t.orig_size) != 0)
      rep->failures.push_back(label + ": tensor '" + t.name + "' differs from " + against);
    if (!against.empty()) orig.release(data_start + t.orig_offset, t.orig_size);
  }
  if (rep->failures.size() == failures_before && hash.digest.digest() != reader->original_xxh64()) {
    rep->failures.push_back(label + ": XXH64 of the restored file differs (Df11FileChecksum)");
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
  rep->stored_bytes = fs::file_size(in);
  for (const ReaderTensor& t : reader->tensors()) {
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
      Histogram hist;
      const Error e = decode_exponent_histogram(t.bf16, hist, threads);
      if (e != Error::Ok) return make_status(e, in, "tensor '" + t.name + "': exponent stream does not decode");
      tr.exponent_entropy = entropy_bits(hist);
      tr.longest_code = max_code_length(t.bf16.lengths);
    }
    rep->tensors.push_back(std::move(tr));
  }
  return Status::Ok();
}

}  // namespace df11
