#include "bf16_payload_writer.h"

#include <algorithm>
#include <thread>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <cstring>
#include <functional>
#include <mutex>

#include "byte_planes.h"
#include "container_layout.h"
#include "earliest_status.h"
#include "parallel.h"
#include "read_ahead.h"
#include "zstd_payload.h"
#include <zstd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

namespace {

std::atomic<uint64_t> g_window_elems{0};  // testing hook; 0: kBf16WindowElems
std::atomic<uint32_t> g_coder_delay_us{0};  // testing hook; 0: none
std::atomic<void (*)()> g_between_passes{nullptr};  // testing hook

// The testing hook's pause of the coder, with its window in hand.
void coder_delay() {
  if (const uint32_t us = g_coder_delay_us.load(std::memory_order_relaxed))
    std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// One stream word shared by two windows (or the partial last word): OR-ed
// together once every window is done.
struct EdgeWord {
  uint64_t index;
  uint32_t bits;
};

// With one worker, window k + 1 is read while window k is coded, and
// `then` runs on the reader's thread too, on each window just read, in
// window order: the part of a pass that would otherwise wait on the coder
// (pass 1's XXH64, pass 2's split), so that at -T1 the two threads share
// the work instead of one copying and the other doing everything else.
using AfterRead = std::function<void(int slot, const uint16_t* w, uint64_t len)>;
std::unique_ptr<ReadAhead> window_read_ahead(const MappedFile& in, uint64_t src, uint64_t n, uint64_t w,
                                             std::vector<uint16_t>* bufs, AfterRead then) {
  return std::make_unique<ReadAhead>(div_ceil(n, w), [&in, src, n, w, bufs, then = std::move(then)](uint64_t k,
                                                                                                     int slot) {
    const uint64_t b = k * w, len = std::min(w, n - b);
    const Status s = in.read(src + 2 * b, 2 * len, bufs[slot].data());
    if (s.ok()) then(slot, bufs[slot].data(), len);
    return s;
  });
}

// Whether zstd would store the n weights at `src` in under `budget` bytes,
// judged as the ZSTD payload would be written (byte planes, the payload's
// level): the whole tensor when it is at most 256 KiB (then exactly what the
// payload holds), else 16 pieces of 16 KiB spread evenly, each one group of
// planes, compressed alone (no piece sees another's repeats, so the estimate
// errs against zstd).
Status zstd_estimate_under(const MappedFile& in, uint64_t src, uint64_t n, uint64_t budget, bool* under) {
  constexpr uint64_t kPiece = 16 << 10, kPieces = 16;
  const uint64_t bytes = 2 * n;
  const int level = bytes <= kZstdSmallBytes ? kZstdSmallLevel : kZstdLevel;
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!cctx) return make_status(Error::OutOfMemory, in.path(), "zstd: out of memory");
  const uint64_t most = std::min(bytes, kPiece * kPieces);
  std::vector<uint8_t> piece(most), planes(most), z(ZSTD_compressBound(most));
  uint64_t sampled = 0, stored = 0;
  auto add = [&](uint64_t at, uint64_t len) -> Status {
    if (Status s = in.read(src + at, len, piece.data()); !s.ok()) return s;
    to_byte_planes(piece.data(), len, 2, planes.data());
    const size_t c = ZSTD_compressCCtx(cctx.get(), z.data(), z.size(), planes.data(), len, level);
    stored += ZSTD_isError(c) ? len : c;
    sampled += len;
    return Status::Ok();
  };
  if (bytes <= most) {
    if (Status s = add(0, bytes); !s.ok()) return s;
  } else {
    for (uint64_t k = 0; k < kPieces; ++k)  // even offsets: whole weights
      if (Status s = add((bytes - kPiece) / (kPieces - 1) * k & ~uint64_t{1}, kPiece); !s.ok()) return s;
  }
  *under = static_cast<unsigned __int128>(stored) * bytes < static_cast<unsigned __int128>(budget) * sampled;
  return Status::Ok();
}

}  // namespace

namespace testing {
uint64_t set_bf16_window_elems(uint64_t elems) noexcept { return g_window_elems.exchange(elems); }
uint32_t set_bf16_coder_delay_us(uint32_t us) noexcept { return g_coder_delay_us.exchange(us); }
void (*set_bf16_between_passes(void (*fn)()) noexcept)() { return g_between_passes.exchange(fn); }
}  // namespace testing

Status Bf16PayloadWriter::write(const MappedFile& in, uint64_t src_offset, uint64_t n, AtomicOutputFile& out,
                                uint64_t p0, unsigned threads, Bf16PayloadResult* r) {
  *r = Bf16PayloadResult{};
  const uint64_t hook = g_window_elems.load(std::memory_order_relaxed);
  const uint64_t W = hook ? hook : kBf16WindowElems;
  const uint64_t nwin = div_ceil(n, W);
  const unsigned workers = static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(threads, nwin)));
  if (slots_.size() < workers) slots_.resize(workers);
  hists_.resize(nwin);
  EarliestStatus first;
  if (interrupted()) return interrupted_status(in.path());

  // Pass 1: histogram of every window; the tensor's XXH64 in window order.
  XXH64_state_t xxh;
  XXH64_reset(&xxh, 0);
  uint8_t last_exp = 0;
  {
    std::atomic<uint64_t> next{0};
    OrderedTurn turn;
    run_workers(workers, [&](unsigned wk) {
      Slot& sl = slots_[wk];
      sl.in[0].resize(W);
      std::unique_ptr<ReadAhead> ahead;
      if (workers == 1 && nwin > 1) {
        sl.in[1].resize(W);
        // The reader hashes each window it reads (in order): the XXH64 leaves
        // the coder's thread, which keeps the histogram.
        ahead = window_read_ahead(in, src_offset, n, W, sl.in,
                                  [&xxh](int, const uint16_t* w, uint64_t len) { XXH64_update(&xxh, w, 2 * len); });
      }
      for (uint64_t k; !first.failed && (k = next.fetch_add(1)) < nwin;) {
        const uint64_t b = k * W, len = std::min(W, n - b);
        const uint16_t* w = sl.in[0].data();
        Status s = ahead ? ahead->get(k) : in.read(src_offset + 2 * b, 2 * len, sl.in[0].data());
        if (ahead) w = sl.in[k & 1].data();
        if (!s.ok() || interrupted()) {
          first.set(k, s.ok() ? interrupted_status(in.path()) : s);
          turn.abort();
          return;
        }
        coder_delay();
        // Straight from the weights: pass 2 splits them (pass 1 needs no planes).
        const Histogram h = exponent_histogram(w, len);
        for (int e = 0; e < 256; ++e) hists_[k][e] = static_cast<uint32_t>(h[e]);
        if (k == nwin - 1) last_exp = static_cast<uint8_t>((w[len - 1] >> 7) & 0xFF);
        if (ahead) {
          ahead->release(k);
          continue;
        }
        if (!turn.wait(k)) return;
        XXH64_update(&xxh, w, 2 * len);
        turn.done();
      }
    }, [&] {
      first.stop();
      turn.abort();
    });
  }
  if (!first.s.ok()) return first.s;
  r->orig_xxh64 = XXH64_digest(&xxh);
  for (uint64_t k = 0; k < nwin; ++k)
    for (int e = 0; e < 256; ++e) r->hist[e] += hists_[k][e];
  r->lengths = build_code_lengths(r->hist);
  const CodeLengths& len = r->lengths;
  // Window k's codes start at bit_begin[k].
  std::vector<uint64_t> bit_begin(nwin + 1, 0);
  for (uint64_t k = 0; k < nwin; ++k) {
    uint64_t bits = 0;
    for (int e = 0; e < 256; ++e) bits += uint64_t{hists_[k][e]} * len[e];
    bit_begin[k + 1] = bit_begin[k] + bits;
  }
  Bf16Geometry& g = r->geom;
  g.n = n;
  g.total_bits = bit_begin[nwin];
  g.n_threads = (g.total_bits - len[last_exp]) / kChunkBits + 1;
  const Bf16Sections sec = bf16_sections(g);
  r->payload_size = sec.end;
  if (sec.end >= 2 * n) return Status::Ok();  // not smaller: the caller stores it otherwise
  // BF16_HUFFMAN keeps every sign-mantissa byte: at least 8 bits a weight.
  // A tensor where one exponent holds half the weights or more (zeros, a
  // constant, a mask, a sparse matrix) may repeat those bytes too, and zstd
  // then stores it in a fraction of that (a 32 MiB zero matrix: 1 KB against
  // 19 MB). It goes to ZSTD only when zstd takes under half the space: that
  // tensor stops being decodable on the GPU (df11_pack_host refuses it, and
  // the Python loader keeps it dense there), which a sparse matrix that zstd
  // shrinks by a fifth more is not worth. Trained weight matrices (their
  // most common exponent holds a quarter to a third of them) are not
  // sampled; a norm's weights near 1.0 may be, at the cost of one small zstd.
  const uint64_t top = *std::max_element(r->hist.begin(), r->hist.end());
  if (2 * top >= n) {
    bool under = false;
    if (Status s = zstd_estimate_under(in, src_offset, n, sec.end / 2, &under); !s.ok()) return s;
    if (under) return Status::Ok();
  }
  r->huffman = true;
  if (void (*hook)() = g_between_passes.load(std::memory_order_relaxed)) hook();

  // Pass 2: every window encoded at its bit offset and stored at its place.
  gaps_.assign(g.gap_bytes(), 0);
  block_out_.assign(g.block_out_entries(), 0);
  block_out_.back() = n;
  tables_.set(len);
  const Bf16EncodeTables& tables = tables_;
  std::vector<EdgeWord> edges(2 * nwin, EdgeWord{UINT64_MAX, 0});
  const uint64_t stream_at = p0 + sec.stream;
  out.start_writer();
  // A tensor of one window (up to 2 MiB) is put together here and goes out
  // as one write: its five writes (sign-mantissa, stream, edge word, head,
  // zero tail) were most of the system time of a file of thousands of small
  // tensors. Its weights are still in the buffer pass 1 read them into.
  const bool whole = nwin == 1;
  if (whole) whole_.assign(sec.end, 0);
  auto put_whole = [&](const void* d, uint64_t bytes, uint64_t at) {
    std::memcpy(whole_.data() + (at - p0), d, bytes);
    return Status::Ok();
  };
  {
    std::atomic<uint64_t> next{0};
    run_workers(workers, [&](unsigned wk) {
      Slot& sl = slots_[wk];
      sl.exps[0].resize(W);
      sl.sm[0].resize(W);
      sl.words.resize(div_ceil(W * kMaxCodeLength, 32) + 2);
      std::unique_ptr<ReadAhead> ahead;
      if (workers == 1 && nwin > 1) {
        // The reader splits each window it reads into that slot's planes:
        // the coder's thread keeps only the encode.
        sl.exps[1].resize(W);
        sl.sm[1].resize(W);
        ahead = window_read_ahead(in, src_offset, n, W, sl.in, [&sl](int slot, const uint16_t* w, uint64_t len) {
          split_bf16(w, len, sl.exps[slot].data(), sl.sm[slot].data());
        });
      }
      for (uint64_t k; !first.failed && (k = next.fetch_add(1)) < nwin;) {
        const uint64_t b = k * W, cnt = std::min(W, n - b);
        const int slot = ahead ? static_cast<int>(k & 1) : 0;
        Status s = ahead ? ahead->get(k) : whole ? Status::Ok() : in.read(src_offset + 2 * b, 2 * cnt, sl.in[0].data());
        if (!s.ok() || interrupted()) {
          first.set(k, s.ok() ? interrupted_status(in.path()) : s);
          return;
        }
        coder_delay();
        if (!ahead) split_bf16(sl.in[0].data(), cnt, sl.exps[0].data(), sl.sm[0].data());
        const uint8_t* const exps = sl.exps[slot].data();
        const uint8_t* const sm = sl.sm[slot].data();
        // The previous window's last code length: needed to know whether this
        // window opens a chunk at its first code.
        uint32_t prev_len = 0;
        if (b > 0) {
          uint16_t prev;
          s = in.read(src_offset + 2 * (b - 1), 2, &prev);
          if (!s.ok()) {
            first.set(k, s);
            return;
          }
          prev_len = len[(prev >> 7) & 0xFF];
        }
        const uint64_t bb = bit_begin[k], be = bit_begin[k + 1];
        // Pass 2 reads the weights again: ones that differ from pass 1's
        // (a rewrite that kept the file's size and mtime, which
        // check_unchanged cannot see) end the window elsewhere than planned.
        if (encode_bf16_window(tables, exps, b, cnt, bb, prev_len, sl.words.data(), gaps_.data(), block_out_.data(),
                               g.n_threads) != be) {
          first.set(k, make_status(Error::Io, in.path(),
                                   "file changed while being read (its tensor data differ between two reads)"));
          return;
        }
        // One worker: through the writer thread's buffers, so the page-cache
        // copy overlaps the coding. Several: each writes its own, one at a time
        // (AtomicOutputFile::pwrite), without the copy into a buffer (as
        // decompress does; PERFORMANCE.md, "Many cores, round 3").
        auto put = [&](const void* d, uint64_t bytes, uint64_t at) {
          return whole ? put_whole(d, bytes, at) : workers > 1 ? out.pwrite(d, bytes, at) : out.pwrite_behind(d, bytes, at);
        };
        s = put(sm, cnt, p0 + sec.sm + b);
        // The slot's planes are used (put copied the sign-mantissa bytes, or
        // wrote them): the reader may refill it.
        if (ahead) ahead->release(k);
        // Whole words inside this window go out now; a first or last word
        // that a neighbour shares is kept as an edge.
        const uint64_t w0 = bb / 32, w_end = div_ceil(be, 32);
        uint64_t lo = w0, hi = w_end;
        if (bb % 32 && lo < hi) edges[2 * k] = {lo++, sl.words[0]};
        if (be % 32 && lo < hi) edges[2 * k + 1] = {--hi, sl.words[hi - w0]};
        if (s.ok() && hi > lo) s = put(sl.words.data() + (lo - w0), 4 * (hi - lo), stream_at + 4 * lo);
        if (!s.ok()) {
          first.set(k, s);
          return;
        }
      }
    }, [&] { first.stop(); });
  }
  if (!first.s.ok()) return first.s;
  // Edge words: OR the pieces of each shared word, in index order.
  std::vector<EdgeWord> merged;
  for (const EdgeWord& e : edges) {
    if (e.index == UINT64_MAX) continue;
    if (!merged.empty() && merged.back().index == e.index) merged.back().bits |= e.bits;
    else merged.push_back(e);
  }
  auto put = [&](const void* d, uint64_t bytes, uint64_t at) {
    return whole ? put_whole(d, bytes, at) : out.pwrite(d, bytes, at);
  };
  Status s;
  for (const EdgeWord& e : merged)
    if (s.ok()) s = put(&e.bits, 4, stream_at + 4 * e.index);
  // Everything else of the payload: code lengths, block outputs, gaps, the
  // stream's zero tail and the zero padding between sections.
  // The sections before the stream are contiguous: one write (they went out
  // as six, which made thousands of small tensors cost more in system calls
  // than in coding; a black-box audit of other checkpoint shapes).
  head_.assign(sec.stream, 0);
  for (uint64_t k = 0; k < kCodeLengthsBytes; ++k)
    head_[k] = static_cast<uint8_t>(len[2 * k] | (len[2 * k + 1] << 4));
  std::memcpy(head_.data() + sec.block_out, block_out_.data(), 8 * block_out_.size());
  std::memcpy(head_.data() + sec.gaps, gaps_.data(), gaps_.size());
  if (s.ok()) s = put(head_.data(), head_.size(), p0);
  if (whole) return s.ok() ? out.pwrite_behind(whole_.data(), whole_.size(), p0) : s;  // zero tail included
  static const uint8_t z[4096] = {};
  for (uint64_t at = sec.stream + 4 * div_ceil(g.total_bits, 32); at < sec.sm && s.ok(); at += sizeof z)
    s = out.pwrite(z, std::min<uint64_t>(sizeof z, sec.sm - at), p0 + at);  // the stream's zero tail
  return s;
}

}  // namespace df11
