#include "container_writer.h"

#include <zstd.h>

#include <cstring>
#include <thread>

#include "byte_planes.h"
#include "container_layout.h"
#include "file_digest.h"
#include "tensor_stats.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

namespace {

// zstd levels for non-BF16 tensors. Most are small (norms, biases: a few KB);
// on those level 19 costs milliseconds and stores 4% less than level 3 (GPT-2
// test file: 127 KB instead of 133 KB of byte planes). Level 19 runs at a few
// MB/s, so tensors above kZstdSmallBytes keep zstd's default balance, level 3.
constexpr int kZstdLevel = 3;
constexpr int kZstdSmallLevel = 19;
constexpr uint64_t kZstdSmallBytes = uint64_t{64} << 10;

struct XxhState {
  XXH64_state_t* s = XXH64_createState();
  XxhState() { XXH64_reset(s, 0); }
  ~XxhState() { XXH64_freeState(s); }
};

}  // namespace

unsigned resolve_threads(unsigned requested) {
  if (requested) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

Status write_container(const std::string& label, const MappedFile& file, const StHeader& h,
                       AtomicOutputFile& out, const Options& opt, FileReport* report) {
  const unsigned threads = resolve_threads(opt.threads);
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
  EncodedBf16 enc;  // reused: one allocation for the largest tensor
  std::vector<uint8_t> sm_spare;  // the other sign-mantissa buffer (see below)
  uint8_t packed[kCodeLengthsBytes];  // lives until the queued writes are flushed
  // Whatever the exit path, queued writes that read enc/packed finish first.
  struct FlushGuard {
    AtomicOutputFile& f;
    ~FlushGuard() { f.flush(); }
  } flush_guard{out};
  uint64_t done = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (interrupted()) return interrupted_status(label);
    const StTensor& t = h.tensors[i];
    const uint8_t* src = base + data_start + t.begin;
    const uint64_t size = t.end - t.begin;
    Record r;
    r.orig_offset = t.begin;
    r.orig_size = size;
    // BF16 tensors are hashed inside the encoder's first pass over them.
    const bool bf16_path = t.dtype == Dtype::BF16 && size > 0;
    // One thread maps a BF16 tensor window by window (below); otherwise all at once.
    const bool windowed = bf16_path && threads == 1;
    if (!windowed) file.will_need(data_start + t.begin, size);
    if (!bf16_path) r.orig_xxh64 = XXH64(src, size, 0);
    s = out.write_zeros(align_up(out.offset(), kAlignment) - out.offset());
    if (!s.ok()) return s;
    r.payload_offset = out.offset();

    TensorReport tr;
    tr.name = t.name;
    tr.dtype = dtype_name(t.dtype);
    tr.shape = t.shape;
    tr.original_bytes = size;
    bool written = false;
    if (bf16_path) {
      const uint64_t n = size / 2;
      // The mapping is only 2-byte aligned relative to the data start; the
      // safetensors data start itself may be odd, so copy when misaligned.
      std::vector<uint16_t> aligned;
      const uint16_t* w = reinterpret_cast<const uint16_t*>(src);
      if (reinterpret_cast<uintptr_t>(src) % 2) {
        aligned.resize(n);
        std::memcpy(aligned.data(), src, size);
        w = aligned.data();
      }
      const uint64_t p0 = out.offset();
      Bf16Sections sec;
      bool huffman = false;
      // Two sign-mantissa buffers take turns, so this tensor's split runs
      // while the writer thread may still be storing the previous tensor.
      std::swap(enc.sm, sm_spare);
      EncodeHooks hooks;
      hooks.input_xxh64 = &r.orig_xxh64;
      // Map the weights a window ahead of the first pass and drop them behind
      // it, so that a tensor's input never sits in memory whole.
      constexpr uint64_t kWindow = uint64_t{4} << 20;  // bytes
      uint64_t released = 0, mapped = std::min(size, kWindow);
      if (windowed) {
        file.will_need(data_start + t.begin, mapped);
        hooks.on_input_done = [&](uint64_t elements) {
          const uint64_t done = 2 * elements;
          if (done + kWindow / 2 > mapped && mapped < size) {
            const uint64_t next = std::min(size, mapped + kWindow);
            file.will_need(data_start + t.begin + mapped, next - mapped);
            mapped = next;
          }
          if (done - released >= kWindow || done == size) {
            file.release(data_start + t.begin + released, done - released);
            released = done;
          }
        };
      }
      hooks.on_layout = [&](const EncodedBf16& e) {
        // From here on the encoder overwrites the stream, gaps and block
        // outputs that earlier queued writes read: wait for them first.
        s = out.flush();
        // The weights have been split: their pages can leave this process
        // now rather than after the encode (they stay in the page cache).
        file.release(data_start + t.begin, size);
        sec = bf16_sections(e.geom);
        huffman = sec.end < size;
        // The sign-mantissa section (most of the payload) is stored by the
        // writer thread while the exponent stream is encoded.
        if (huffman && s.ok()) out.pwrite_async(e.sm.data(), e.sm.size(), p0 + sec.sm);
      };
      encode_bf16_into(w, n, threads, &enc, hooks);
      if (!s.ok()) return s;
      if (huffman) {
        r.encoding = kBf16Huffman;
        r.total_bits = enc.geom.total_bits;
        r.n_threads = enc.geom.n_threads;
        for (uint64_t k = 0; k < kCodeLengthsBytes; ++k)
          packed[k] = static_cast<uint8_t>(enc.lengths[2 * k] | (enc.lengths[2 * k + 1] << 4));
        static const uint8_t zeros[kAlignment] = {};
        auto section = [&](const void* data, uint64_t bytes, uint64_t rel, uint64_t next_rel) {
          out.pwrite_async(data, bytes, p0 + rel);
          out.pwrite_async(zeros, next_rel - rel - bytes, p0 + rel + bytes);  // padding < 64
        };
        section(packed, kCodeLengthsBytes, 0, sec.block_out);
        section(enc.block_out.data(), 8 * enc.block_out.size(), sec.block_out, sec.gaps);
        section(enc.gaps.data(), enc.gaps.size(), sec.gaps, sec.stream);
        section(enc.stream.data(), 4 * enc.stream.size(), sec.stream, sec.sm);
        out.seek(p0 + sec.end);
        tr.encoding = "bf16-huffman";
        tr.exponent_entropy = entropy_bits(enc.hist);
        tr.longest_code = max_code_length(enc.lengths);
        written = true;
      }
    }
    if (!written && size > 0) {
      // ZSTD payloads hold the tensor in byte planes (FORMAT.md section 3).
      const uint64_t k = dtype_size(t.dtype);
      const uint8_t* zsrc = src;
      if (k > 1) {
        planes.resize(size);
        to_byte_planes(src, size, k, planes.data());
        zsrc = planes.data();
      }
      zbuf.resize(ZSTD_compressBound(size));
      const int level = size <= kZstdSmallBytes ? kZstdSmallLevel : kZstdLevel;
      const size_t z = ZSTD_compress(zbuf.data(), zbuf.size(), zsrc, size, level);
      if (!ZSTD_isError(z) && z < size) {
        r.encoding = kZstd;
        // zstd frames have bits that do not change what they decode to (e.g.
        // the window size): this checksum makes every stored byte count.
        r.payload_xxh64 = XXH64(zbuf.data(), z, 0);
        s = out.write(zbuf.data(), z);
        tr.encoding = "zstd";
        written = true;
      }
    }
    if (!written) {
      r.encoding = kRaw;
      s = out.write(src, size);
      tr.encoding = "raw";
    }
    if (!s.ok()) return s;
    r.payload_size = out.offset() - r.payload_offset;
    whole.add_tensor(r.orig_xxh64);
    r.store(&index[i * kRecordSize]);
    file.release(data_start + t.begin, size);

    tr.stored_bytes = r.payload_size;
    const uint64_t elems = size / std::max<uint64_t>(1, dtype_size(t.dtype));
    tr.bits_per_weight = elems ? 8.0 * static_cast<double>(r.payload_size) / static_cast<double>(elems) : 0.0;
    if (report) report->tensors.push_back(std::move(tr));
    done += size;
    if (opt.progress) opt.progress(done, file.size());
  }
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
  if (report) {
    report->original_bytes = file.size();
    report->stored_bytes = fh.file_size;
  }
  return Status::Ok();
}

}  // namespace df11
