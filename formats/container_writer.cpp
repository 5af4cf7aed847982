#include "container_writer.h"

#include "dir_tasks.h"
#include "parallel.h"

#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <thread>

#include "bf16_payload_writer.h"
#include "byte_planes.h"
#include "zstd_payload.h"
#include "container_layout.h"
#include "file_digest.h"
#include "tensor_stats.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

namespace {


struct XxhState {
  XXH64_state_t* s = XXH64_createState();
  XxhState() { XXH64_reset(s, 0); }
  ~XxhState() { XXH64_freeState(s); }
};

}  // namespace


Status write_container(const std::string& label, const MappedFile& file, const StHeader& h,
                       AtomicOutputFile& out, const Options& opt, FileReport* report,
                       uint64_t* original_xxh64, ThreadGrant& grant) {
  const uint8_t* base = file.data();
  const uint64_t data_start = 8 + h.json_size;
  const uint64_t count = h.tensors.size();

  FixedHeader fh;
  fh.original_size = file.size();
  fh.json_size = h.json_size;
  fh.tensor_count = count;
  fh.chunk_bits = kChunkBits;
  fh.block_threads = kBlockThreads;
  fh.max_code_length = kMaxCodeLength;
  fh.alignment = kAlignment;

  // Placeholder header; payloads follow, then the compressed meta block.
  Status s = out.write_zeros(kFixedHeaderSize);
  if (!s.ok()) return s;

  FileDigest whole(base, data_start);
  std::vector<uint8_t> index(count * kRecordSize);
  std::vector<uint8_t> zbuf, planes;  // reused: ZSTD output, byte-planed input
  Bf16PayloadWriter bf16;             // reused: window buffers of every worker
  ZstdPayloadWriter zstd;             // reused: large ZSTD tensors, window by window
  std::vector<uint8_t> raw;           // reused: RAW copies
  uint64_t done = 0;
  // Small ZSTD tensors are read through the mapping: their pages leave the
  // process a MiB at a time (a call per tensor was a system call per tensor;
  // everything else is read with pread and maps nothing).
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t unreleased = data_start / page * page;  // whole pages from here on are still mapped
  auto release_read = [&](uint64_t end, bool last) {
    const uint64_t to = last ? file.size() : end / page * page;
    if (to > unreleased && (to - unreleased >= (uint64_t{1} << 20) || last)) {
      file.release(unreleased, to - unreleased);
      unreleased = to;
    }
  };
  for (uint64_t i = 0; i < count; ++i) {
    if (interrupted()) return interrupted_status(label);
    const StTensor& t = h.tensors[i];
    const uint8_t* src = base + data_start + t.begin;
    const uint64_t size = t.end - t.begin;
    Record r;
    r.orig_offset = t.begin;
    r.orig_size = size;
    s = out.write_zeros(align_up(out.offset(), kAlignment) - out.offset());
    if (!s.ok()) return s;
    r.payload_offset = out.offset();

    TensorReport tr;
    tr.name = t.name;
    tr.dtype = dtype_name(t.dtype);
    tr.shape = t.shape;
    tr.original_bytes = size;
    bool written = false;
    if (t.dtype == Dtype::BF16 && size > 0) {
      // Streamed: read twice in windows with pread, never mapped whole.
      Bf16PayloadResult br;
      s = bf16.write(file, data_start + t.begin, size / 2, out, r.payload_offset, grant.threads(), &br);
      if (!s.ok()) return s;
      r.orig_xxh64 = br.orig_xxh64;
      if (br.huffman) {
        r.encoding = kBf16Huffman;
        r.total_bits = br.geom.total_bits;
        r.n_threads = br.geom.n_threads;
        out.seek(r.payload_offset + br.payload_size);
        tr.encoding = "bf16-huffman";
        tr.exponent_entropy = entropy_bits(br.hist);
        tr.longest_code = max_code_length(br.lengths);
        written = true;
      }
    }
    if (!written && size > 0) {
      // ZSTD payloads hold the tensor in byte planes (FORMAT.md section 3).
      const uint64_t k = dtype_size(t.dtype);
      if (size <= kZstdSmallBytes) {
        // Small: at once, at the slow level that pays on small tensors.
        r.orig_xxh64 = XXH64(src, size, 0);
        const uint8_t* zsrc = src;
        if (k > 1) {
          planes.resize(size);
          to_byte_planes(src, size, k, planes.data());
          zsrc = planes.data();
        }
        zbuf.resize(ZSTD_compressBound(size));
        const size_t z = ZSTD_compress(zbuf.data(), zbuf.size(), zsrc, size, kZstdSmallLevel);
        if (!ZSTD_isError(z) && z < size) {
          r.encoding = kZstd;
          // zstd frames have bits that do not change what they decode to (e.g.
          // the window size): this checksum makes every stored byte count.
          r.payload_xxh64 = XXH64(zbuf.data(), z, 0);
          s = out.write(zbuf.data(), z);
          written = true;
        }
      } else {
        // Large: streamed window by window with pread (bounded memory).
        bool smaller = false;
        uint64_t frame_size = 0;
        s = zstd.write(file, data_start + t.begin, size, k, kZstdLevel, out, &smaller, &frame_size, &r.payload_xxh64,
                       &r.orig_xxh64);
        if (!s.ok()) return s;
        if (smaller) {
          r.encoding = kZstd;
          written = true;
        } else {
          r.payload_xxh64 = 0;
        }
      }
      if (written) tr.encoding = "zstd";
    }
    if (!written) {
      // RAW, copied window by window with pread (hashed on the way).
      r.encoding = kRaw;
      tr.encoding = "raw";
      XXH64_state_t xs;
      XXH64_reset(&xs, 0);
      constexpr uint64_t kPiece = uint64_t{1} << 20;
      raw.resize(std::min(kPiece, size));
      for (uint64_t off = 0; off < size && s.ok(); off += kPiece) {
        const uint64_t n = std::min(kPiece, size - off);
        s = file.read(data_start + t.begin + off, n, raw.data());
        if (s.ok()) {
          XXH64_update(&xs, raw.data(), n);
          s = out.write(raw.data(), n);
        }
      }
      r.orig_xxh64 = XXH64_digest(&xs);
    }
    if (!s.ok()) return s;
    r.payload_size = out.offset() - r.payload_offset;
    whole.add_tensor(r.orig_xxh64);
    r.store(&index[i * kRecordSize]);
    release_read(data_start + t.end, false);

    tr.stored_bytes = r.payload_size;
    const double elems = 8.0 * static_cast<double>(size) / static_cast<double>(std::max<uint64_t>(1, dtype_bits(t.dtype)));
    tr.bits_per_weight = elems > 0 ? 8.0 * static_cast<double>(r.payload_size) / elems : 0.0;
    if (report) report->tensors.push_back(std::move(tr));
    done += size;
    if (opt.progress) opt.progress(done, file.size() - 8 - h.json_size);  // tensor bytes: done reaches it
  }
  release_read(file.size(), true);
  // Meta block: one zstd frame of the verbatim JSON followed by the index.
  std::vector<uint8_t> meta(h.json_size + index.size());
  std::memcpy(meta.data(), base + 8, h.json_size);
  if (!index.empty()) std::memcpy(meta.data() + h.json_size, index.data(), index.size());
  std::vector<uint8_t> zmeta(ZSTD_compressBound(meta.size()));
  const size_t zm = ZSTD_compress(zmeta.data(), zmeta.size(), meta.data(), meta.size(), kMetaZstdLevel);
  if (ZSTD_isError(zm)) return make_status(Error::Io, label, std::string("zstd failed: ") + ZSTD_getErrorName(zm));
  s = out.write_zeros(align_up(out.offset(), kAlignment) - out.offset());
  if (!s.ok()) return s;
  fh.meta_offset = out.offset();
  fh.meta_size = zm;
  s = out.write(zmeta.data(), zm);
  if (!s.ok()) return s;
  fh.file_size = out.offset();
  fh.original_xxh64 = whole.digest();
  if (original_xxh64) *original_xxh64 = fh.original_xxh64;

  // Header checksum: bytes [0,120) (the checksum field excluded) and the meta block.
  uint8_t head[kFixedHeaderSize];
  fh.store(head);
  XxhState ck;
  XXH64_update(ck.s, head, kChecksumOffset);
  XXH64_update(ck.s, zmeta.data(), zm);
  fh.header_checksum = XXH64_digest(ck.s);
  fh.store(head);
  s = out.pwrite(head, kFixedHeaderSize, 0);
  if (!s.ok()) return s;
  // Payload windows may still sit in the writer thread's queue: the file is
  // complete (e.g. for --verify) only once they are out. A mapped output was
  // extended to an estimate of its size (compress_one): cut to the real one.
  s = out.set_final_size(fh.file_size);
  if (!s.ok()) return s;
  if (report) {
    report->original_bytes = file.size();
    report->stored_bytes = fh.file_size;
  }
  return Status::Ok();
}

}  // namespace df11
