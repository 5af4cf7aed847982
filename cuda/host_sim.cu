// Host model of decode_loop_kernel (decode_loop.cuh): the kernel's per-thread
// functions run on the CPU, block by block, with the kernel's hand-over of
// segment ends, block scan, checks and status keys. Lets tests check the
// kernel's parse, packing and verdicts on machines without a GPU.
#include <algorithm>
#include <cstring>
#include <vector>

#include "decode_loop.cuh"
#include "decode_once.cuh"
#include "internal.h"

namespace df11::cuda::detail {

Error simulate_loop_decode(const Bf16View& v, uint16_t* out, int P, bool smem_stream) {
  if (P != 1 && P != 2 && P != 4 && P != 8) return Error::Usage;
  uint64_t max_block = 0;
  if (const Error e = validate_bf16(v, &max_block); e != Error::Ok) return e;
  const Bf16Geometry& g = v.geom;
  if (g.n == 0) return Error::Ok;
  std::vector<uint16_t> lut(kLutSize), lutmask(kLutSize);
  std::vector<uint32_t> lutm(kLutSize), lutacc(kLutSize);
  build_decode_lut(v.lengths, lut.data());
  build_multi_lut(lut.data(), lutm.data());
  for (auto& e : lutm) e = pass2_entry(e);
  build_pass1_luts(lut.data(), lutacc.data(), lutmask.data());
  const Pass1Luts t1{lutacc.data(), lutmask.data()};
  // The device stream is padded with 16 zero bytes (upload()).
  std::vector<uint32_t> stream(v.stream, v.stream + g.stream_words());
  stream.resize(stream.size() + 4, 0u);
  const uint32_t buf_bytes = static_cast<uint32_t>(align_up(max_block + 32, 16));
  const int kNW = kWords / P, kSegBits = 32 * kNW;
  std::vector<uint8_t> buf(buf_bytes);
  std::vector<uint32_t> sstream(kSmemStreamWords);
  unsigned long long status = kStatusClear;
  auto report = [&](uint64_t block, uint32_t pos, uint32_t code) {
    status = std::min<unsigned long long>(status, (block << 9) | (pos << 2) | code);
  };
  const uint64_t stream_words = g.stream_words();
  for (uint64_t b = 0; b < g.n_blocks(); ++b) {
    const uint32_t m_active = static_cast<uint32_t>(std::min<uint64_t>(kThreads, g.n_threads - b * kThreads));
    if (smem_stream) {  // as the kernel stages it
      const uint64_t w0 = b * kThreads * kWords;
      for (uint32_t ch = 0; ch < kThreads; ++ch)
        for (uint32_t j = 0; j <= kWords; ++j) {
          const uint64_t gw = w0 + ch * kWords + j;
          sstream[ch * kStreamStride + j] = gw < stream_words ? stream[gw] : 0u;
        }
      for (int j = 0; j < 4; ++j) sstream[kThreads * kStreamStride + j] = 0;
    }
    const int T = kThreads * P;
    std::vector<uint32_t> acc(T, 0);
    std::vector<int> start(T, 0), pend(T, 0), endv(T, 0), expect(T, 0);
    std::vector<const uint32_t*> basev(T);
    std::vector<char> active(T, 0);
    std::vector<LoopSpec> sps(T);
    for (int tid = 0; tid < T; ++tid) {
      const uint32_t h = tid % P, c = tid / P;
      const uint64_t t = b * kThreads + c;
      active[tid] = t < g.n_threads;
      if (!active[tid]) continue;
      const int gap = static_cast<int>(gap_at(v.gaps, t));
      const uint64_t left = g.total_bits - t * 1024;
      const int chunk_end = left < 1024 ? static_cast<int>(left) : 1024;
      endv[tid] = std::min(chunk_end - static_cast<int>(h) * kSegBits, kSegBits);
      int ex = t + 1 < g.n_threads ? 1024 + static_cast<int>(gap_at(v.gaps, t + 1)) : static_cast<int>(left);
      expect[tid] = ex - (P - 1) * kSegBits;
      basev[tid] = smem_stream ? sstream.data() + c * kStreamStride + h * kNW : stream.data() + t * kWords + h * kNW;
      // Pass 1: every lane parses its segment (segment 0 from its gap).
      start[tid] = h == 0 ? gap : 0;
      sps[tid] = parse_segment<false>(basev[tid], start[tid], endv[tid], t1);
      acc[tid] = sps[tid].acc;
      pend[tid] = static_cast<int>(acc[tid] & kAccPos);
    }
    // Hand-over rounds, as the kernel's warps run them: every lane reads its
    // predecessor's end from before the round (__shfl_up_sync), then updates.
    std::vector<int> q_done(T, -0x7FFFFFFF);
    for (bool any = true; any && P > 1;) {
      any = false;
      const std::vector<int> prev = pend;
      for (int tid = 0; tid < T; ++tid) {
        if (!active[tid] || tid % P == 0) continue;
        const int q = prev[tid - 1] - kSegBits;
        if (q == q_done[tid]) continue;
        any = true;
        q_done[tid] = q;
        start[tid] = q;
        pend[tid] = resolve_round<false>(basev[tid], q, endv[tid], sps[tid], t1, acc[tid]);
      }
    }
    uint32_t total = 0;
    std::vector<uint32_t> excl(T), cnt(T);
    for (int tid = 0; tid < T; ++tid) {
      cnt[tid] = (acc[tid] >> kAccCntShift) & 0x7FFu;
      excl[tid] = total;
      total += cnt[tid];
    }
    const uint64_t ob = v.block_out[b], oe = v.block_out[b + 1];
    const bool range_ok = ob <= oe && oe <= g.n && oe - ob + 32 <= buf_bytes;
    if (!range_ok) {
      report(b, 0, kCodeBadBlockOffsets);
      continue;
    }
    const uint32_t expected = static_cast<uint32_t>(oe - ob), align = static_cast<uint32_t>(ob & 15);
    for (int tid = 0; tid < T; ++tid) {
      const uint32_t h = tid % P, c = tid / P;
      if (!active[tid] || h != static_cast<uint32_t>(P - 1)) continue;
      uint32_t inv = 0;
      for (int k = 0; k < P; ++k) inv |= acc[tid - k] >> kAccInvShift;
      const uint32_t code = pend[tid] != expect[tid] ? kCodeBadGaps
                            : inv                                                ? kCodeStreamCorrupt
                                                                                 : 0u;
      if (code) report(b, status_pos(c, m_active), code);
    }
    if (total != expected) {
      report(b, kThreads, kCodeStreamCorrupt);
      continue;
    }
    std::fill(buf.begin(), buf.end(), uint8_t{0xA5});
    std::vector<Pass2Tail> tails(T);
    for (int tid = 0; tid < T; ++tid)
      if (active[tid]) tails[tid] = decode_to_buffer<false>(basev[tid], start[tid], cnt[tid], lutm.data(), buf.data(),
                                                            align + excl[tid]);
    for (int tid = T - 1; tid >= 0; --tid) tail_bytes(tails[tid], buf.data());  // after the barrier, in any order
    for (uint32_t j = 0; j < expected; ++j) out[ob + j] = merge1_rot(v.sm[ob + j], buf[align + j]);
  }
  if (status == kStatusClear) return Error::Ok;
  switch (status & 3) {
    case kCodeBadGaps: return Error::Df11BadGaps;
    case kCodeBadBlockOffsets: return Error::Df11BadBlockOffsets;
    default: return Error::Df11StreamCorrupt;
  }
}

// Host model of decode_once_kernel<4> (decode_once.cuh). fallback_bytes: the
// plan's buffer size decides between the copy and the decode-again paths as in
// the kernel (buffer over the tables only if it fits there); force_fallback
// takes the decode-again path everywhere. Staging stores are checked to stay in
// their slots (guard words after the staging area).
Error simulate_once_decode(const Bf16View& v, uint16_t* out, bool force_fallback) {
  constexpr int P = 4;
  using L = OnceLayout<P>;
  uint64_t max_block = 0;
  if (const Error e = validate_bf16(v, &max_block); e != Error::Ok) return e;
  const Bf16Geometry& g = v.geom;
  if (g.n == 0) return Error::Ok;
  std::vector<uint16_t> lut(kLutSize), lutmask(kLutSize);
  std::vector<uint32_t> lutm(kLutSize), lutacc(kLutSize);
  build_decode_lut(v.lengths, lut.data());
  build_multi_lut(lut.data(), lutm.data());
  for (auto& e : lutm) e = once_entry(e);
  build_pass1_luts(lut.data(), lutacc.data(), lutmask.data());
  std::vector<uint32_t> stream(v.stream, v.stream + g.stream_words());
  stream.resize(stream.size() + 4, 0u);
  const uint32_t buf_bytes = static_cast<uint32_t>(align_up(max_block + 32, 16));
  const bool fits = buf_bytes <= L::kTables && !force_fallback;
  const int kNW = kWords / P, kSegBits = 32 * kNW;
  const int T = kThreads * P;
  std::vector<uint8_t> buf(buf_bytes);
  std::vector<uint32_t> sstream(kSmemStreamWords);
  constexpr uint32_t kGuard = 64;
  std::vector<uint32_t> stg(L::kStagingBytes / 4 + kGuard, 0xDEADBEEFu);
  unsigned long long status = kStatusClear;
  auto report = [&](uint64_t block, uint32_t pos, uint32_t code) {
    status = std::min<unsigned long long>(status, (block << 9) | (pos << 2) | code);
  };
  const uint64_t stream_words = g.stream_words();
  constexpr uint32_t kCap = kOnceHW + kOnceC;
  for (uint64_t b = 0; b < g.n_blocks(); ++b) {
    const uint32_t m_active = static_cast<uint32_t>(std::min<uint64_t>(kThreads, g.n_threads - b * kThreads));
    const uint64_t w0 = b * kThreads * kWords;
    for (uint32_t ch = 0; ch < kThreads; ++ch)
      for (uint32_t j = 0; j <= kWords; ++j) {
        const uint64_t gw = w0 + ch * kWords + j;
        sstream[ch * kStreamStride + j] = gw < stream_words ? stream[gw] : 0u;
      }
    for (int j = 0; j < 4; ++j) sstream[kThreads * kStreamStride + j] = 0;
    std::vector<OnceSeg> seg(T);
    std::vector<OnceSpec> spv(T);
    std::vector<int> start(T, 0), endv(T, 0), expect(T, 0);
    std::vector<const uint32_t*> basev(T);
    std::vector<char> active(T, 0);
    for (int tid = 0; tid < T; ++tid) {
      const uint32_t h = tid % P, c = tid / P;
      const uint64_t t = b * kThreads + c;
      active[tid] = t < g.n_threads;
      if (!active[tid]) continue;
      const Slot slot{stg.data() + tid, static_cast<uint32_t>(T)};
      const int gap = static_cast<int>(gap_at(v.gaps, t));
      const uint64_t left = g.total_bits - t * 1024;
      const int chunk_end = left < 1024 ? static_cast<int>(left) : 1024;
      endv[tid] = std::min(chunk_end - static_cast<int>(h) * kSegBits, kSegBits);
      int ex = t + 1 < g.n_threads ? 1024 + static_cast<int>(gap_at(v.gaps, t + 1)) : static_cast<int>(left);
      expect[tid] = ex - (P - 1) * kSegBits;
      basev[tid] = sstream.data() + c * kStreamStride + h * kNW;
      if (h == 0 || endv[tid] > 0) {
        BitReader<false> r;
        int p0;
        if (h == 0) {
          r.init(basev[tid], gap);
          p0 = gap;
        } else {
          r.init(basev[tid], 0);
          p0 = speculate_first_word<false>(r, endv[tid], lutm.data(), lutmask.data(), spv[tid]);
        }
        const StageResult st = stage_decode(r, p0, endv[tid], lutm.data(), lutmask.data(), slot, kOnceHW, kCap);
        if (h == 0) {
          start[tid] = gap;
          seg[tid].pend = st.pend;
          seg[tid].ns = st.cnt;
          seg[tid].inv = st.inv;
        } else {
          spv[tid].pend = st.pend;
          spv[tid].ns = st.cnt;
          spv[tid].sinv = st.inv;
        }
      }
    }
    for (int tid = 0; tid < T; ++tid) {
      const uint32_t h = tid % P;
      if (!active[tid] || h == 0) continue;
      const Slot slot{stg.data() + tid, static_cast<uint32_t>(T)};
      const int q = seg[tid - 1].pend - kSegBits;
      start[tid] = q;
      if (q < endv[tid]) {
        seg[tid] = resolve_once<false>(basev[tid], q, endv[tid], spv[tid], lutm.data(), lutmask.data(), slot, kOnceHW,
                                       kCap);
      } else {
        seg[tid] = OnceSeg{};
        seg[tid].pend = q;
      }
    }
    bool any_ovf = false;
    for (int tid = 0; tid < T; ++tid) {
      const bool ovf = seg[tid].nh > 4 * kOnceHW || seg[tid].ns > 4 * kOnceC;
      any_ovf |= ovf;
      if (active[tid] && !ovf)
        decode_head<false>(basev[tid], start[tid], seg[tid].nh, lutm.data(), Slot{stg.data() + tid, static_cast<uint32_t>(T)},
                           4 * kOnceHW);
    }
    for (uint32_t j = 0; j < kGuard; ++j)
      if (stg[L::kStagingBytes / 4 + j] != 0xDEADBEEFu) return Error::Usage;  // a store past the staging area (never expected)
    uint32_t total = 0;
    std::vector<uint32_t> excl(T), cnt(T);
    for (int tid = 0; tid < T; ++tid) {
      cnt[tid] = seg[tid].nh + seg[tid].ns;
      excl[tid] = total;
      total += cnt[tid];
    }
    const uint64_t ob = v.block_out[b], oe = v.block_out[b + 1];
    const bool range_ok = ob <= oe && oe <= g.n && oe - ob + 32 <= buf_bytes;
    if (!range_ok) {
      report(b, 0, kCodeBadBlockOffsets);
      continue;
    }
    const uint32_t expected = static_cast<uint32_t>(oe - ob), align = static_cast<uint32_t>(ob & 15);
    for (int tid = 0; tid < T; ++tid) {
      const uint32_t h = tid % P, c = tid / P;
      if (!active[tid] || h != static_cast<uint32_t>(P - 1)) continue;
      uint32_t inv = 0;
      for (int k = 0; k < P; ++k) inv |= seg[tid - k].inv;
      const uint32_t code = seg[tid].pend != expect[tid] ? kCodeBadGaps : inv ? kCodeStreamCorrupt : 0u;
      if (code) report(b, status_pos(c, m_active), code);
    }
    if (total != expected) {
      report(b, kThreads, kCodeStreamCorrupt);
      continue;
    }
    std::fill(buf.begin(), buf.end(), uint8_t{0xA5});
    if (!any_ovf && fits) {
      for (int tid = 0; tid < T; ++tid)
        copy_slot(Slot{stg.data() + tid, static_cast<uint32_t>(T)}, 4 * kOnceHW - seg[tid].nh, cnt[tid], buf.data(),
                  align + excl[tid]);
    } else {
      std::vector<Pass2Tail> tails(T);
      for (int tid = 0; tid < T; ++tid)
        if (active[tid])
          tails[tid] = decode_to_buffer<false>(basev[tid], start[tid], cnt[tid], lutm.data(), buf.data(),
                                               align + excl[tid]);
      for (int tid = T - 1; tid >= 0; --tid) tail_bytes(tails[tid], buf.data());
    }
    for (uint32_t j = 0; j < expected; ++j) out[ob + j] = merge1_rot(v.sm[ob + j], buf[align + j]);
  }
  if (status == kStatusClear) return Error::Ok;
  switch (status & 3) {
    case kCodeBadGaps: return Error::Df11BadGaps;
    case kCodeBadBlockOffsets: return Error::Df11BadBlockOffsets;
    default: return Error::Df11StreamCorrupt;
  }
}

}  // namespace df11::cuda::detail
