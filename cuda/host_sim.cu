// Host model of decode_loop_kernel (decode_loop.cuh): the kernel's per-thread
// functions run on the CPU, block by block, with the kernel's hand-over of
// segment ends, block scan, checks and status keys. Lets tests check the
// kernel's parse, packing and verdicts on machines without a GPU.
#include <algorithm>
#include <cstring>
#include <vector>

#include "decode_loop.cuh"
#include "internal.h"

namespace df11::cuda::detail {

// The production kernel's loop options (kLoopOpt), so that the model runs the same loops.
constexpr bool kSimPair1 = (kLoopOpt & kOptPair1) != 0;
constexpr bool kSimPair2 = (kLoopOpt & kOptPair2) != 0;
constexpr bool kSimWalk = (kLoopOpt & kOptWalk) != 0;

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
      sps[tid] = parse_segment<false, kSimPair1, kSimWalk>(basev[tid], start[tid], endv[tid], t1);
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
        pend[tid] = resolve_round<false, kSimPair1, kSimWalk>(basev[tid], q, endv[tid], sps[tid], t1, acc[tid]);
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
      if (active[tid]) tails[tid] = decode_to_buffer<false, kSimPair2>(basev[tid], start[tid], cnt[tid], lutm.data(), buf.data(),
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

}  // namespace df11::cuda::detail
