// Fuzz target 2: the validating .df11 reader (Reader::open) and the full CPU
// decode of every tensor (Reader::decode_tensor), plus the exponent histogram
// decoder used by `df11 info`.
//
// Input: one mode byte, then a container. The reader is reached through a
// memfd (/proc/self/fd/N), so nothing is added to the public API.
//   mode % 3 == 0: the container bytes as they are;
//   mode % 3 == 1: header_checksum recomputed first, so that mutations reach
//                  the rules behind the checksum;
//   mode % 3 == 2: the bytes from meta_offset to the end are the meta block
//                  *uncompressed* (JSON ++ index); the harness compresses them
//                  and fixes meta_size, file_size and header_checksum, so that
//                  mutations reach the embedded header and the index records.
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "container_layout.h"
#include "df11.h"
#include "fuzz_targets.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace {

using namespace df11;

void fix_checksum(std::vector<uint8_t>& b) {
  if (b.size() < kFixedHeaderSize) return;
  const uint64_t meta_offset = get_u64(b.data() + 40);
  if (meta_offset > b.size()) return;
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  XXH64_update(st, b.data(), kChecksumOffset);
  XXH64_update(st, b.data() + meta_offset, b.size() - meta_offset);
  put_u64(b.data() + kChecksumOffset, XXH64_digest(st));
  XXH64_freeState(st);
}

void compress_meta(std::vector<uint8_t>& b) {
  if (b.size() < kFixedHeaderSize) return;
  const uint64_t meta_offset = get_u64(b.data() + 40);
  if (meta_offset < kFixedHeaderSize || meta_offset > b.size()) return;
  const size_t raw = b.size() - meta_offset;
  std::vector<uint8_t> z(ZSTD_compressBound(raw));
  const size_t zn = ZSTD_compress(z.data(), z.size(), b.data() + meta_offset, raw, 1);
  if (ZSTD_isError(zn)) return;
  b.resize(meta_offset);
  b.insert(b.end(), z.begin(), z.begin() + static_cast<std::ptrdiff_t>(zn));
  put_u64(b.data() + 48, zn);
  put_u64(b.data() + 16, b.size());
  fix_checksum(b);
}

struct MemFd {
  int fd = -1;
  ~MemFd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

extern "C" int df11_fuzz_container(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] % 3;
  std::vector<uint8_t> b(data + 1, data + size);
  if (mode == 1) fix_checksum(b);
  if (mode == 2) compress_meta(b);

  MemFd m;
  m.fd = memfd_create("df11fuzz", MFD_CLOEXEC);
  DF11_FUZZ_CHECK(m.fd >= 0);
  size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = write(m.fd, b.data() + off, b.size() - off);
    DF11_FUZZ_CHECK(n > 0);
    off += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(m.fd);

  std::unique_ptr<Reader> r;
  const Status s = Reader::open(path, &r);
  static const bool verbose = std::getenv("DF11_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "mode %d: %s\n", mode, s.ok() ? "opened" : s.message.c_str());
  if (!s.ok()) {
    DF11_FUZZ_CHECK(s.code != Error::Ok && r == nullptr);
    DF11_FUZZ_CHECK(s.message.find('\n') == std::string::npos);
    const int ec = exit_code(s.code);
    DF11_FUZZ_CHECK(ec == 1 || ec == 3);
    return 0;
  }
  // An accepted container: every view lies inside the file, and the sizes
  // add up (docs/FORMAT.md sections 2-4).
  const std::vector<uint8_t> head = r->original_header();
  DF11_FUZZ_CHECK(head.size() >= 8 && head.size() <= r->original_size());
  uint64_t total = head.size();
  std::vector<uint8_t> out;
  for (size_t i = 0; i < r->tensors().size(); ++i) {
    const ReaderTensor& t = r->tensors()[i];
    total += t.orig_size;
    DF11_FUZZ_CHECK(t.encoding <= kBf16Huffman);
    DF11_FUZZ_CHECK(t.payload_size <= b.size());
    if (t.encoding == kRaw) DF11_FUZZ_CHECK(t.payload_size == t.orig_size);
    if (t.encoding == kBf16Huffman) {
      DF11_FUZZ_CHECK(t.bf16.geom.n * 2 == t.orig_size && t.dtype == "BF16");
      DF11_FUZZ_CHECK(validate_bf16(t.bf16) == Error::Ok);
      Histogram hist;
      const Error he = decode_exponent_histogram(t.bf16, hist, 1);
      if (he == Error::Ok) {
        uint64_t sum = 0;
        for (uint64_t c : hist) sum += c;
        DF11_FUZZ_CHECK(sum == t.bf16.geom.n);
      }
    }
    // Decoding writes exactly orig_size bytes: ASan checks that through the
    // exact-size buffer; the odd offset exercises the unaligned path.
    out.assign(t.orig_size + 1, 0);
    const Status d1 = r->decode_tensor(i, out.data() + 1, 1);
    if (t.encoding == kBf16Huffman) {
      std::vector<uint8_t> out2(t.orig_size);
      const Status d2 = r->decode_tensor(i, out2.data(), 2);
      DF11_FUZZ_CHECK(d1.code == d2.code);
      if (d1.ok()) DF11_FUZZ_CHECK(std::memcmp(out2.data(), out.data() + 1, t.orig_size) == 0);
      if (d1.ok()) {
        // The slow oracle agrees with the fast decoder on every accepted stream.
        std::vector<uint16_t> ref(t.bf16.geom.n);
        DF11_FUZZ_CHECK(decode_bf16_reference(t.bf16, ref.data()) == Error::Ok);
        DF11_FUZZ_CHECK(std::memcmp(ref.data(), out2.data(), t.orig_size) == 0);
      }
    }
    if (!d1.ok()) {
      const int ec = exit_code(d1.code);
      DF11_FUZZ_CHECK(ec == 1 || ec == 3);
    }
  }
  DF11_FUZZ_CHECK(total == r->original_size());
  return 0;
}
