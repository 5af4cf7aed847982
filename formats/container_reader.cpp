// Reader for .df11 v2: enforces every rule of docs/FORMAT.md before any
// payload byte is trusted.
#include <zstd.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include "byte_planes.h"
#include "container_layout.h"
#include "earliest_status.h"
#include "read_ahead.h"
#include "df11.h"
#include "file_io.h"
#include "parallel.h"
#include "safetensors_header.h"
#include "zstd_payload.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

struct Reader::Impl {
  std::string path;
  MappedFile file;
  FixedHeader fh;
  StHeader st;
  std::vector<uint8_t> meta;  // decompressed JSON ++ index
  std::vector<ReaderTensor> tensors;
  // Streaming decode buffers, reused across tensors: one slot per worker.
  struct Slot {
    std::vector<uint32_t> stream[2];  // two: one is read ahead while the other decodes
    std::vector<uint8_t> sm[2];
    std::vector<uint16_t> out[2];  // alternate: one is decoded into while the other is hashed
  };
  struct Scratch {
    std::vector<Slot> slots;
    std::vector<uint64_t> block_out;  // a BF16 tensor's index arrays, read with pread
    std::vector<uint8_t> gaps;
    std::vector<uint8_t> sections;  // a one-group BF16 tensor's, from the block-output array on
    std::vector<uint8_t> raw_buf;
    ZstdPayloadReader zstd;
  };
  // Decodes may run on one Reader from several threads at once (the C API
  // promises it for df11_decode_host): each call leases a scratch of its own,
  // and returned ones are reused, so buffers stay warm across tensors.
  std::mutex pool_mu;
  std::vector<std::unique_ptr<Scratch>> pool;
  std::unique_ptr<Scratch> take() {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (pool.empty()) return std::make_unique<Scratch>();
    std::unique_ptr<Scratch> sc = std::move(pool.back());
    pool.pop_back();
    return sc;
  }
  void give_back(std::unique_ptr<Scratch> sc) {
    std::lock_guard<std::mutex> lock(pool_mu);
    pool.push_back(std::move(sc));
  }
};

Reader::Reader() : impl_(new Impl) {}
Reader::~Reader() = default;
const std::string& Reader::path() const { return impl_->path; }
uint64_t Reader::original_size() const { return impl_->fh.original_size; }
uint64_t Reader::original_xxh64() const { return impl_->fh.original_xxh64; }
const std::vector<ReaderTensor>& Reader::tensors() const { return impl_->tensors; }

std::vector<uint8_t> Reader::original_header() const {
  std::vector<uint8_t> out(8 + impl_->fh.json_size);
  put_u64(out.data(), impl_->fh.json_size);
  std::memcpy(out.data() + 8, impl_->meta.data(), impl_->fh.json_size);
  return out;
}

namespace {

bool all_zero(const uint8_t* p, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

std::string tensor_label(const ReaderTensor& t) { return "tensor '" + t.name + "'"; }

// The most bytes one zstd frame of `frame_size` bytes can decode to (RFC 8878):
// every block that produces output takes at least 4 bytes (3-byte header and
// content) and produces at most 128 KiB. Checked before allocating a size
// that the frame only declares.
uint64_t zstd_max_output(uint64_t frame_size) { return (frame_size / 4 + 1) * (uint64_t{128} << 10); }

// Drops the whole pages of [from, end) from the process (they stay in the
// page cache) once they come to 1 MiB, or at `last`; returns where the next
// call starts (a page boundary). A call per tensor was an madvise per
// tensor, a tenth of the system time on a file of thousands of small ones.
uint64_t release_pages_below(const MappedFile& f, uint64_t from, uint64_t end, bool last = false) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  constexpr uint64_t kBatch = uint64_t{1} << 20;
  const uint64_t to = end / page * page;
  if (to <= from || (to - from < kBatch && !last)) return from;
  f.release(from, to - from);
  return to;
}

// The block outputs place every decoded run: read again with pread for the
// decode, they are checked again (a file rewritten since open() would
// otherwise place runs outside the output; its caller reports the change).
bool block_outputs_in_order(const uint64_t* bo, uint64_t nb, uint64_t n) {
  if (bo[0] != 0 || bo[nb] != n) return false;
  for (uint64_t b = 0; b < nb; ++b)
    if (bo[b + 1] < bo[b]) return false;
  return true;
}
constexpr const char* kRereadDiffers = "block outputs differ from those checked at open";

}  // namespace

Status Reader::open(const std::string& path, std::unique_ptr<Reader>* out) {
  std::unique_ptr<Reader> r(new Reader);
  Impl& m = *r->impl_;
  m.path = path;
  Status s = m.file.open(path);
  if (!s.ok()) return s;
  const uint8_t* d = m.file.data();
  const uint64_t size = m.file.size();
  // A file cut short or rewritten while it is validated (its missing pages
  // read as zeros under install_fault_handler) is not invalid: say what happened.
  auto fail = [&](Error e, const std::string& what) {
    Status changed = m.file.check_unchanged();
    return changed.ok() ? make_status(e, path, what) : changed;
  };

  if (size < 8 || std::memcmp(d, kMagic, 8) != 0) return fail(Error::Df11BadMagic, "not a .df11 file (bad magic)");
  if (size < kFixedHeaderSize) return fail(Error::Df11Truncated, "truncated: file ends inside the fixed header");
  FixedHeader& fh = m.fh;
  fh.load(d);
  if (fh.version != kFormatVersion)
    return fail(Error::Df11UnsupportedVersion,
                "unsupported format version " + std::to_string(fh.version) + " (this df11 reads version " + std::to_string(kFormatVersion) + ")");
  if (fh.file_size > size)
    return fail(Error::Df11Truncated, "truncated: header says " + std::to_string(fh.file_size) +
                                          " bytes, file has " + std::to_string(size));
  if (fh.file_size < size)
    return fail(Error::Df11BadHeaderField, "file_size field " + std::to_string(fh.file_size) +
                                               " is smaller than the file (" + std::to_string(size) + " bytes)");
  if (fh.meta_offset < kFixedHeaderSize || fh.meta_offset % kAlignment || fh.meta_offset > size ||
      fh.meta_size != size - fh.meta_offset)
    return fail(Error::Df11BadHeaderField, "meta block does not end the file at an aligned offset");
  {
    XXH64_state_t* ck = XXH64_createState();
    XXH64_reset(ck, 0);
    XXH64_update(ck, d, kChecksumOffset);
    XXH64_update(ck, d + fh.meta_offset, fh.meta_size);
    const uint64_t sum = XXH64_digest(ck);
    XXH64_freeState(ck);
    if (sum != fh.header_checksum) return fail(Error::Df11HeaderChecksum, "header checksum mismatch (header or meta block corrupted)");
  }
  if (fh.header_size != kFixedHeaderSize || fh.chunk_bits != kChunkBits || fh.block_threads != kBlockThreads ||
      fh.max_code_length != kMaxCodeLength || fh.alignment != kAlignment)
    return fail(Error::Df11BadHeaderField, "layout parameters differ from version " + std::to_string(kFormatVersion) + " (" +
                                                std::to_string(kFixedHeaderSize) + "/" + std::to_string(kChunkBits) + "/" +
                                                std::to_string(kBlockThreads) + "/" + std::to_string(kMaxCodeLength) + "/" +
                                                std::to_string(kAlignment) + ")");
  if (!all_zero(d + kReservedOffset, kChecksumOffset - kReservedOffset))
    return fail(Error::Df11BadHeaderField, "reserved header bytes are not zero");
  // Every tensor needs well over one JSON byte, so count <= json_size bounds the index.
  if (fh.json_size > kMaxHeaderSize || fh.tensor_count > fh.json_size)
    return fail(Error::Df11BadHeaderField, "json_size or tensor_count out of range");
  if (fh.original_size < 8 + fh.json_size) return fail(Error::Df11BadHeaderField, "original_size smaller than its header");
  const uint64_t meta_len = fh.json_size + fh.tensor_count * kRecordSize;
  if (ZSTD_getFrameContentSize(d + fh.meta_offset, fh.meta_size) != meta_len)
    return fail(Error::Df11BadHeaderField, "meta block does not declare JSON + index size");
  bool one_frame = false;
  if (s = single_zstd_frame_pread(m.file, fh.meta_offset, fh.meta_size, &one_frame); !s.ok()) return s;
  if (meta_len > zstd_max_output(fh.meta_size) || !one_frame)
    return fail(Error::Df11BadHeaderField, "meta block is not one zstd frame that can hold JSON + index");
  m.meta.resize(meta_len);
  const size_t got = ZSTD_decompress(m.meta.data(), meta_len, d + fh.meta_offset, fh.meta_size);
  if (ZSTD_isError(got) || got != meta_len) return fail(Error::Df11BadHeaderField, "meta block does not decompress");

  s = parse_safetensors_json(m.meta.data(), fh.json_size, fh.original_size - 8 - fh.json_size,
                             path + " (embedded safetensors header)", &m.st);
  if (!s.ok()) return s;
  if (m.st.tensors.size() != fh.tensor_count)
    return fail(Error::Df11BadHeaderField, "tensor_count differs from the embedded header");
  const uint8_t* index = m.meta.data() + fh.json_size;

  uint64_t expect_payload = kFixedHeaderSize;
  uint64_t prev_end = kFixedHeaderSize;
  uint64_t released = 0;  // pages below it have left the process (release_pages_below)
  m.tensors.resize(fh.tensor_count);
  for (uint64_t i = 0; i < fh.tensor_count; ++i) {
    const uint8_t* rec = index + i * kRecordSize;
    const StTensor& st = m.st.tensors[i];
    ReaderTensor& t = m.tensors[i];
    t.name = st.name;
    t.dtype = dtype_name(st.dtype);
    t.shape = st.shape;
    Record r;
    r.load(rec);
    auto bad = [&](Error e, const std::string& what) { return fail(e, tensor_label(t) + ": " + what); };
    if (!Record::reserved_zero(rec)) return bad(Error::Df11BadIndex, "reserved record bytes are not zero");
    if (r.encoding > kBf16Huffman) return bad(Error::Df11BadIndex, "unknown encoding " + std::to_string(r.encoding));
    if (r.orig_offset != st.begin || r.orig_size != st.end - st.begin)
      return bad(Error::Df11BadIndex, "record offsets differ from the embedded header");
    if (r.payload_offset != expect_payload) return bad(Error::Df11BadIndex, "payload not at the next aligned offset");
    if (r.payload_offset > fh.meta_offset || r.payload_size > fh.meta_offset - r.payload_offset)
      return bad(Error::Df11Truncated, "payload runs past the end of the file");
    if (!all_zero(d + prev_end, r.payload_offset - prev_end))
      return bad(Error::Df11NonzeroPadding, "padding before the payload is not zero");
    t.encoding = r.encoding;
    t.orig_offset = r.orig_offset;
    t.orig_size = r.orig_size;
    t.orig_xxh64 = r.orig_xxh64;
    t.payload_xxh64 = r.payload_xxh64;
    if (r.encoding != kZstd && r.payload_xxh64) return bad(Error::Df11BadIndex, "payload_xxh64 set for a non-ZSTD encoding");
    t.payload = d + r.payload_offset;
    t.payload_size = r.payload_size;
    if (r.encoding != kBf16Huffman && (r.total_bits || r.n_threads))
      return bad(Error::Df11BadIndex, "total_bits/n_threads set for a non-BF16 encoding");
    if (r.orig_size == 0 && r.encoding != kRaw) return bad(Error::Df11BadIndex, "empty tensor not stored RAW");
    if (r.encoding == kRaw && r.payload_size != r.orig_size) return bad(Error::Df11BadIndex, "RAW payload size differs from tensor size");
    if (r.encoding == kZstd) {
      const unsigned long long c = ZSTD_getFrameContentSize(t.payload, r.payload_size);
      if (c != r.orig_size) return bad(Error::Df11ZstdCorrupt, "zstd frame does not declare the tensor's size");
      if (s = single_zstd_frame_pread(m.file, r.payload_offset, r.payload_size, &one_frame); !s.ok()) return s;
      if (r.orig_size > zstd_max_output(r.payload_size) || !one_frame)
        return bad(Error::Df11ZstdCorrupt, "payload is not one zstd frame that can hold the tensor");
    }
    if (r.encoding == kBf16Huffman) {
      if (st.dtype != Dtype::BF16) return bad(Error::Df11BadIndex, "BF16 encoding on a " + t.dtype + " tensor");
      const uint64_t n = r.orig_size / 2;
      // Bound the geometry before computing section sizes from it.
      if (n > size || r.total_bits / kMaxCodeLength > n || r.n_threads > r.total_bits / kChunkBits + 1)
        return bad(Error::Df11BadIndex, "total_bits or n_threads out of range");
      Bf16View& v = t.bf16;
      v.geom.n = n;
      v.geom.total_bits = r.total_bits;
      v.geom.n_threads = r.n_threads;
      const Bf16Sections sec = bf16_sections(v.geom);
      if (sec.end != r.payload_size) return bad(Error::Df11BadIndex, "payload size differs from its sections");
      const uint8_t* p = t.payload;
      for (uint64_t k = 0; k < kCodeLengthsBytes; ++k) {
        v.lengths[2 * k] = p[k] & 0xF;
        v.lengths[2 * k + 1] = p[k] >> 4;
      }
      auto pad_ok = [&](uint64_t from, uint64_t to) { return all_zero(p + from, to - from); };
      if (!pad_ok(kCodeLengthsBytes, sec.block_out) || !pad_ok(sec.block_out + 8 * v.geom.block_out_entries(), sec.gaps) ||
          !pad_ok(sec.gaps + v.geom.gap_bytes(), sec.stream) || !pad_ok(sec.stream + 4 * v.geom.stream_words(), sec.sm))
        return bad(Error::Df11NonzeroPadding, "padding between sections is not zero");
      v.block_out = reinterpret_cast<const uint64_t*>(p + sec.block_out);
      v.gaps = p + sec.gaps;
      v.stream = reinterpret_cast<const uint32_t*>(p + sec.stream);
      v.sm = p + sec.sm;
      const Error e = validate_bf16(v, &t.max_block_elems);
      if (e != Error::Ok) return bad(e, "invalid BF16 sections");  // fail() names the rule
    }
    prev_end = r.payload_offset + r.payload_size;
    expect_payload = align_up(prev_end, kAlignment);
    // The pages these checks mapped (code lengths, block-output and gap
    // arrays, padding, small zstd frames, and fault-around's neighbours)
    // leave the process, so that opening a file of thousands of tensors
    // does not keep a piece of each (about 130 KB per tensor before).
    released = release_pages_below(m.file, released, prev_end);
  }
  release_pages_below(m.file, released, size, /*last=*/true);
  if (fh.meta_offset != align_up(prev_end, kAlignment)) return fail(Error::Df11BadHeaderField, "meta block not right after the last payload");
  if (!all_zero(d + prev_end, fh.meta_offset - prev_end)) return fail(Error::Df11NonzeroPadding, "padding before the meta block is not zero");
  uint64_t total = 8 + fh.json_size;
  for (const auto& t : m.tensors) total += t.orig_size;
  if (total != fh.original_size) return fail(Error::Df11BadHeaderField, "original_size differs from the tensors' sizes");
  *out = std::move(r);
  return Status::Ok();
}

Status Reader::check_unchanged() const { return impl_->file.check_unchanged(); }

void Reader::release_mapped(size_t i) const {
  const ReaderTensor& t = impl_->tensors.at(i);
  impl_->file.release(static_cast<uint64_t>(t.payload - impl_->file.data()), t.payload_size);
}

Status Reader::check_mapped(size_t i) const {
  const ReaderTensor& t = impl_->tensors.at(i);
  return impl_->file.check_size(static_cast<uint64_t>(t.payload - impl_->file.data()) + t.payload_size,
                                tensor_label(t));
}

Status Reader::decode_tensor(size_t i, uint8_t* out, unsigned threads) const {
  return decode(i, threads, nullptr, nullptr, out);
}

Status Reader::decode_tensor_stream(size_t i, unsigned threads, const PlacedSink& place,
                                    const PieceSink& ordered) const {
  return decode(i, threads, &place, ordered ? &ordered : nullptr, nullptr);
}

// Reader::decode hands a BF16 tensor's blocks to its workers in groups of
// this many (about 1 MB of output); a tensor of one group is decoded on the
// calling thread.
constexpr uint64_t kGroupBlocks = 32;

unsigned Reader::decode_workers(size_t i, unsigned threads) const {
  const ReaderTensor& t = impl_->tensors.at(i);
  if (t.encoding != kBf16Huffman) return 1;
  return static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(threads, div_ceil(t.bf16.geom.n_blocks(), kGroupBlocks))));
}

Status Reader::decode(size_t i, unsigned threads, const PlacedSink* place_to, const PieceSink* ordered,
                      uint8_t* dest) const {
  // With `dest`, windows are decoded where they belong and `place` copies
  // nothing; BF16 windows are 16-bit stores, so an odd `dest` goes through
  // the copy instead.
  uint8_t* const direct = dest && reinterpret_cast<uintptr_t>(dest) % alignof(uint16_t) == 0 ? dest : nullptr;
  const PlacedSink place = place_to ? *place_to : PlacedSink([dest](uint64_t off, const uint8_t* p, uint64_t n) {
    if (n && dest + off != p) std::memcpy(dest + off, p, n);
    return Status::Ok();
  });
  const ReaderTensor& t = impl_->tensors.at(i);
  const MappedFile& file = impl_->file;
  auto fail = [&](Error e, const std::string& what) { return make_status(e, impl_->path, tensor_label(t) + ": " + what); };
  XXH64_state_t hash;
  XXH64_reset(&hash, 0);
  const uint64_t payload_at = static_cast<uint64_t>(t.payload - file.data());
  // One window, in order: hashed and handed on while it is still in cache.
  auto in_order = [&](const uint8_t* p, uint64_t n) -> Status {
    XXH64_update(&hash, p, n);
    return ordered ? (*ordered)(p, n) : Status::Ok();
  };
  constexpr uint64_t kPiece = uint64_t{1} << 20;
  std::unique_ptr<Impl::Scratch> scratch = impl_->take();
  struct GiveBack {
    Impl* impl;
    std::unique_ptr<Impl::Scratch>& sc;
    ~GiveBack() { impl->give_back(std::move(sc)); }
  } give_back{impl_.get(), scratch};
  Impl::Scratch& sc = *scratch;
  Status s;
  switch (t.encoding) {
    case kRaw: {
      std::vector<uint8_t>& buf = sc.raw_buf;
      if (!dest) buf.resize(std::min(kPiece, t.orig_size));
      for (uint64_t off = 0; off < t.orig_size && s.ok(); off += kPiece) {
        const uint64_t n = std::min(kPiece, t.orig_size - off);
        uint8_t* to = dest ? dest + off : buf.data();
        s = file.read(payload_at + off, n, to);
        if (s.ok() && !dest) s = place(off, to, n);
        if (s.ok()) s = in_order(to, n);
      }
      break;
    }
    case kZstd: {
      // Streamed: the frame read with pread, decoded window by window, byte
      // planes undone per window (whole groups), so memory stays bounded.
      std::string what;
      s = sc.zstd.read(
          file, payload_at, t.payload_size, t.payload_xxh64, t.orig_size, dtype_size(impl_->st.tensors.at(i).dtype),
          [&](uint64_t off, const uint8_t* p, uint64_t n) {
            Status r = place(off, p, n);
            return r.ok() ? in_order(p, n) : r;
          },
          &what);
      if (!what.empty()) return fail(s.code, what);
      break;
    }
    case kBf16Huffman: {
      // Groups of blocks (about 1 MB of output) read with pread into each
      // worker's buffers, decoded and placed; an in-order stage on a thread
      // of its own then hashes them (and feeds `ordered`) while the workers
      // decode on, each alternating between two output buffers.
      //
      // The index arrays (block outputs, gaps) are read with pread as well,
      // so that the decode never touches the mapping: a file cut short after
      // open() is MappedFile::read's "file shrank while being read" (Io),
      // where a load from the mapping would be SIGBUS. open() validated them
      // through the mapping; a file rewritten in place since is out of scope
      // (docs/RELIABILITY.md, "Files that change while open").
      const Bf16View& mapped = t.bf16;
      const uint64_t stream_at = static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(mapped.stream) - file.data());
      const uint64_t sm_at = static_cast<uint64_t>(mapped.sm - file.data());
      const uint64_t block_out_at = static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(mapped.block_out) - file.data());
      const uint64_t gaps_at = static_cast<uint64_t>(mapped.gaps - file.data());
      const uint64_t nb = mapped.geom.n_blocks(), groups = div_ceil(nb, kGroupBlocks);
      const unsigned workers = decode_workers(i, threads);
      // Blocks [b0, b1) of `v`, from their stream words and sign-mantissa
      // bytes, decoded to `to` (into `dest`, or `out`): d.bytes, d.size, and
      // d.offset in the tensor, where `place` puts them unless decoded in place.
      struct Decoded {
        const uint8_t* bytes = nullptr;
        uint64_t size = 0, offset = 0;
      };
      auto decode_group = [&](const Bf16Decoder& dec, const Bf16View& v, uint64_t b0, uint64_t b1, const uint32_t* words,
                              const uint8_t* sm, std::vector<uint16_t>& out, Decoded* d) {
        const uint64_t e0 = v.block_out[b0], e1 = v.block_out[b1];
        if (!direct && out.size() < e1 - e0) out.resize(e1 - e0);
        uint16_t* const to = direct ? reinterpret_cast<uint16_t*>(direct) + e0 : out.data();
        *d = Decoded{reinterpret_cast<const uint8_t*>(to), 2 * (e1 - e0), 2 * e0};
        const Error e = dec.decode_window(b0, b1, words, sm, to);
        return e == Error::Ok ? Status::Ok() : fail(e, "exponent stream does not decode consistently");
      };
      auto place_group = [&](const Decoded& d) { return direct ? Status::Ok() : place(d.offset, d.bytes, d.size); };
      // One group (a tensor of up to about 1 MB): its sections read in one
      // pread, decoded, placed and hashed right here. The threads below (an
      // in-order stage, a reader) cost more than such a tensor's decode:
      // started for each tensor, they made a file of thousands of small
      // tensors 20x slower than zstd -d (a black-box audit of other
      // checkpoint shapes); a pread per section cost a tenth more.
      if (groups == 1) {
        // Sections start at multiples of 64 bytes from the block-output
        // array (FORMAT.md), so at aligned places of this buffer too.
        std::vector<uint8_t>& sec = sc.sections;
        sec.resize(payload_at + t.payload_size - block_out_at);
        s = interrupted() ? interrupted_status(impl_->path) : file.read(block_out_at, sec.size(), sec.data());
        if (!s.ok()) break;
        Bf16View v = mapped;
        v.block_out = reinterpret_cast<const uint64_t*>(sec.data());
        v.gaps = sec.data() + (gaps_at - block_out_at);
        if (!block_outputs_in_order(v.block_out, nb, v.geom.n)) {
          s = fail(Error::Df11BadBlockOffsets, kRereadDiffers);
          break;
        }
        if (sc.slots.empty()) sc.slots.resize(1);
        Decoded d;
        s = decode_group(Bf16Decoder(v), v, 0, nb, reinterpret_cast<const uint32_t*>(sec.data() + (stream_at - block_out_at)),
                         sec.data() + (sm_at - block_out_at) + v.block_out[0], sc.slots[0].out[0], &d);
        if (s.ok()) s = place_group(d);
        if (s.ok()) s = in_order(d.bytes, d.size);
        break;
      }
      sc.block_out.resize(mapped.geom.block_out_entries());
      sc.gaps.resize(mapped.geom.gap_bytes());
      s = file.read(block_out_at, 8 * sc.block_out.size(), sc.block_out.data());
      if (s.ok()) s = file.read(gaps_at, sc.gaps.size(), sc.gaps.data());
      if (!s.ok()) break;
      if (!block_outputs_in_order(sc.block_out.data(), nb, mapped.geom.n)) {
        s = fail(Error::Df11BadBlockOffsets, kRereadDiffers);
        break;
      }
      Bf16View v = mapped;
      v.block_out = sc.block_out.data();
      v.gaps = sc.gaps.data();
      const Bf16Decoder dec(v);
      if (sc.slots.size() < workers) sc.slots.resize(workers);
      // Reads group g's stream words and sign-mantissa bytes into input set k of slot sl.
      auto load = [&](Impl::Slot& sl, uint64_t g, int k) -> Status {
        const uint64_t b0 = g * kGroupBlocks, b1 = std::min(nb, b0 + kGroupBlocks);
        const uint64_t w0 = b0 * kBlockThreads * kChunkWords;
        const uint64_t w1 = std::min(b1 * kBlockThreads * kChunkWords + 1, v.geom.stream_words());
        const uint64_t e0 = v.block_out[b0], e1 = v.block_out[b1];
        if (sl.stream[k].size() < w1 - w0) sl.stream[k].resize(w1 - w0);
        if (sl.sm[k].size() < e1 - e0) sl.sm[k].resize(e1 - e0);
        Status st = interrupted() ? interrupted_status(impl_->path) : Status::Ok();
        if (st.ok()) st = file.read(stream_at + 4 * w0, 4 * (w1 - w0), sl.stream[k].data());
        if (st.ok()) st = file.read(sm_at + e0, e1 - e0, sl.sm[k].data());
        return st;
      };
      std::atomic<uint64_t> next{0};
      EarliestStatus first;
      // The in-order stage's state: decoded groups waiting for their turn.
      struct Ready {
        const uint8_t* bytes;
        uint64_t size;
        bool* busy;  // the worker's buffer flag, cleared once hashed (null: decoded in place)
      };
      std::mutex mu;
      std::condition_variable cv;
      std::map<uint64_t, Ready> ready;
      bool aborted = false;
      auto abort_all = [&] {
        std::lock_guard<std::mutex> lock(mu);
        aborted = true;
        cv.notify_all();
      };
      // A thread the system refuses (ThreadStartError) is this tensor's
      // OutOfMemory, once every thread started here has been stopped and
      // joined (the ThreadGroups, and ReadAhead's destructor).
      try {
        ThreadGroup stage([&] { abort_all(); });
        stage.start([&] {
          for (uint64_t g = 0; g < groups; ++g) {
            Ready r;
            {
              std::unique_lock<std::mutex> lock(mu);
              cv.wait(lock, [&] { return aborted || ready.count(g); });
              if (aborted) return;
              r = ready[g];
              ready.erase(g);
            }
            const Status st = in_order(r.bytes, r.size);
            if (!st.ok()) {
              first.set(g, st);
              abort_all();
              return;
            }
            std::lock_guard<std::mutex> lock(mu);
            // After an abort the worker that owns *r.busy (a flag on its stack)
            // may have returned already: touch nothing of it.
            if (aborted) return;
            if (r.busy) *r.busy = false;
            cv.notify_all();
          }
        });
        // One worker: a reader thread loads group g + 1 while g decodes (the
        // kernel's copy then runs beside the decoder). Several workers read
        // their own groups, in parallel already.
        std::unique_ptr<ReadAhead> ahead;
        if (workers == 1 && groups > 1)
          ahead = std::make_unique<ReadAhead>(groups, [&](uint64_t g, int k) { return load(sc.slots[0], g, k); });
        run_workers(workers, [&](unsigned wk) {
          Impl::Slot& sl = sc.slots[wk];
          bool busy[2] = {false, false};
          int bi = 0;
          for (uint64_t g; !first.failed && (g = next.fetch_add(1)) < groups; bi ^= 1) {
            if (!direct) {  // the buffer must be hashed before it is reused
              std::unique_lock<std::mutex> lock(mu);
              cv.wait(lock, [&] { return aborted || !busy[bi]; });
              if (aborted) break;
            }
            const uint64_t b0 = g * kGroupBlocks, b1 = std::min(nb, b0 + kGroupBlocks);
            const int k = ahead ? static_cast<int>(g & 1) : 0;
            Decoded d;
            Status st = ahead ? ahead->get(g) : load(sl, g, 0);
            if (st.ok()) st = decode_group(dec, v, b0, b1, sl.stream[k].data(), sl.sm[k].data(), sl.out[bi], &d);
            if (ahead) ahead->release(g);  // decoded: the reader may refill the slot while this one is placed
            if (st.ok()) st = place_group(d);
            if (!st.ok()) {
              first.set(g, st);
              abort_all();
              break;
            }
            std::lock_guard<std::mutex> lock(mu);
            if (!direct) busy[bi] = true;
            ready[g] = Ready{d.bytes, d.size, direct ? nullptr : &busy[bi]};
            cv.notify_all();
          }
          // The stage may still read this worker's buffers: wait until it is
          // done with them (or gave up) before they can go out of scope.
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return aborted || (!busy[0] && !busy[1]); });
        }, [&] {
          first.stop();
          abort_all();
        });
        if (first.failed) abort_all();
        stage.join();
        ahead.reset();
        s = first.s;
      } catch (const ThreadStartError& e) {
        s = fail(Error::OutOfMemory, e.what());
      }
      break;
    }
  }
  if (!s.ok()) return s;
  // Nothing here read the mapping (every read is a pread), so there are no
  // pages of it to release (an madvise per tensor was a tenth of the system
  // time on a file of thousands of small tensors).
  if (XXH64_digest(&hash) != t.orig_xxh64) return fail(Error::Df11TensorChecksum, "XXH64 of decoded bytes differs");
  return Status::Ok();
}

}  // namespace df11
