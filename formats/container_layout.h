// Byte layout of the .df11 v2 fixed header and index records (docs/FORMAT.md
// sections 2-3), with explicit little-endian (de)serialisation.
#pragma once
#include <cstdint>
#include <cstring>

#include "df11.h"
#include "layout.h"

namespace df11 {

constexpr uint8_t kMagic[8] = {0x89, 'D', 'F', '1', '1', '\r', '\n', 0x1A};
constexpr uint64_t kFixedHeaderSize = 128;
constexpr uint64_t kRecordSize = 96;
constexpr uint64_t kChecksumOffset = 120;
constexpr uint64_t kReservedOffset = 88;  // [88, 120) MUST be zero
constexpr int kMetaZstdLevel = 9;
constexpr uint64_t kCodeLengthsBytes = 128;

enum Encoding : uint32_t { kRaw = 0, kZstd = 1, kBf16Huffman = 2 };

inline void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t get_u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t get_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

struct FixedHeader {
  uint32_t version = kFormatVersion;
  uint32_t header_size = kFixedHeaderSize;
  uint64_t file_size = 0;
  uint64_t original_size = 0;
  uint64_t json_size = 0;
  uint64_t meta_offset = 0;   // zstd frame of JSON ++ index, at the end of the file
  uint64_t meta_size = 0;
  uint64_t tensor_count = 0;
  uint32_t chunk_bits = 0, block_threads = 0, max_code_length = 0, alignment = 0;
  uint64_t original_xxh64 = 0;
  uint64_t header_checksum = 0;

  void store(uint8_t out[kFixedHeaderSize]) const {
    std::memset(out, 0, kFixedHeaderSize);
    std::memcpy(out, kMagic, 8);
    put_u32(out + 8, version);
    put_u32(out + 12, header_size);
    put_u64(out + 16, file_size);
    put_u64(out + 24, original_size);
    put_u64(out + 32, json_size);
    put_u64(out + 40, meta_offset);
    put_u64(out + 48, meta_size);
    put_u64(out + 56, tensor_count);
    put_u32(out + 64, chunk_bits);
    put_u32(out + 68, block_threads);
    put_u32(out + 72, max_code_length);
    put_u32(out + 76, alignment);
    put_u64(out + 80, original_xxh64);
    put_u64(out + 120, header_checksum);
  }
  void load(const uint8_t* in) {
    version = get_u32(in + 8);
    header_size = get_u32(in + 12);
    file_size = get_u64(in + 16);
    original_size = get_u64(in + 24);
    json_size = get_u64(in + 32);
    meta_offset = get_u64(in + 40);
    meta_size = get_u64(in + 48);
    tensor_count = get_u64(in + 56);
    chunk_bits = get_u32(in + 64);
    block_threads = get_u32(in + 68);
    max_code_length = get_u32(in + 72);
    alignment = get_u32(in + 76);
    original_xxh64 = get_u64(in + 80);
    header_checksum = get_u64(in + 120);
  }
};

struct Record {
  uint32_t encoding = kRaw;
  uint64_t orig_offset = 0, orig_size = 0, orig_xxh64 = 0;
  uint64_t payload_offset = 0, payload_size = 0;
  uint64_t total_bits = 0, n_threads = 0;
  uint64_t payload_xxh64 = 0;  // ZSTD only: XXH64 of the stored frame

  void store(uint8_t out[kRecordSize]) const {
    std::memset(out, 0, kRecordSize);
    put_u32(out + 0, encoding);
    put_u64(out + 8, orig_offset);
    put_u64(out + 16, orig_size);
    put_u64(out + 24, orig_xxh64);
    put_u64(out + 32, payload_offset);
    put_u64(out + 40, payload_size);
    put_u64(out + 48, total_bits);
    put_u64(out + 56, n_threads);
    put_u64(out + 64, payload_xxh64);
  }
  void load(const uint8_t* in) {
    encoding = get_u32(in + 0);
    orig_offset = get_u64(in + 8);
    orig_size = get_u64(in + 16);
    orig_xxh64 = get_u64(in + 24);
    payload_offset = get_u64(in + 32);
    payload_size = get_u64(in + 40);
    total_bits = get_u64(in + 48);
    n_threads = get_u64(in + 56);
    payload_xxh64 = get_u64(in + 64);
  }
  // Bytes that MUST be zero: encoding's reserved word and the tail.
  static bool reserved_zero(const uint8_t* in) {
    if (get_u32(in + 4) != 0) return false;
    for (uint64_t i = 72; i < kRecordSize; ++i)
      if (in[i]) return false;
    return true;
  }
};

// Section offsets inside a BF16_HUFFMAN payload (relative to its start).
struct Bf16Sections {
  uint64_t code_lengths = 0, block_out = 0, gaps = 0, stream = 0, sm = 0, end = 0;
};

inline Bf16Sections bf16_sections(const Bf16Geometry& g) {
  Bf16Sections s;
  s.code_lengths = 0;
  s.block_out = align_up(kCodeLengthsBytes, kAlignment);
  s.gaps = align_up(s.block_out + 8 * g.block_out_entries(), kAlignment);
  s.stream = align_up(s.gaps + g.gap_bytes(), kAlignment);
  s.sm = align_up(s.stream + 4 * g.stream_words(), kAlignment);
  s.end = s.sm + g.n;
  return s;
}

}  // namespace df11
