// Strict safetensors header parser: every rule of docs/FORMAT.md section 6,
// one named error per rule. Never throws, never reads outside the given
// bytes, and uses O(json_size) memory whatever the input.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "df11.h"  // Status, Error

namespace df11 {

// The dtypes of safetensors 0.8 (its Rust Dtype enum). The sub-byte ones,
// F4 and F6_*, pack their elements into bytes: a tensor of them spans
// product(shape) x bits / 8 bytes, a whole number (safetensors refuses the
// rest). Appended only: the values are not stored anywhere, but stay stable.
enum class Dtype : uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
  F4, F6_E2M3, F6_E3M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, C64
};

const char* dtype_name(Dtype d) noexcept;  // "BF16"; "?" for a value outside the enum
uint64_t dtype_bits(Dtype d) noexcept;     // bits per element (4 for F4); 0 for a value outside the enum
// Bytes per element, as the byte planes of a ZSTD payload group them: 1 for
// the sub-byte dtypes, whose bytes hold several elements; 0 outside the enum.
uint64_t dtype_size(Dtype d) noexcept;
// The dtype spelled exactly `name` (case-sensitive, as in safetensors); false if none.
bool dtype_from_name(const std::string& name, Dtype* out) noexcept;

struct StTensor {
  std::string name;
  Dtype dtype = Dtype::BOOL;
  std::vector<uint64_t> shape;  // empty: a 0-d tensor (1 element)
  uint64_t begin = 0, end = 0;  // relative to the start of the data section
};

struct StHeader {
  uint64_t json_size = 0;         // N
  uint64_t data_size = 0;         // bytes of the data section
  // File data order: sorted by begin offset; ties (possible only when empty
  // tensors share an offset) by end, then by name. So empty tensors at offset X
  // come before the tensor whose data starts at X, and offsets never decrease.
  std::vector<StTensor> tensors;
};

constexpr uint64_t kMaxHeaderSize = 100'000'000;

// Whole file in memory (e.g. mmapped): validates the 8-byte length prefix and
// everything after. `label` starts every message ("<label>: ... (ErrorName)").
// On failure *out is left unchanged; `out` may be null (validate only).
Status parse_safetensors(const uint8_t* file, uint64_t file_size, const std::string& label, StHeader* out);

// Just the JSON bytes (as embedded in a .df11), with the data-section size known.
Status parse_safetensors_json(const uint8_t* json, uint64_t json_size, uint64_t data_size,
                              const std::string& label, StHeader* out);

// ---- Helpers (also used by model_index.cpp) ---------------------------------

// True if [p, p + n) is valid UTF-8: no overlong forms, no surrogates, nothing
// above U+10FFFF, no truncated sequence. On false, *bad_offset (if given) is
// the offset of the first byte of the offending sequence.
bool is_valid_utf8(const uint8_t* p, uint64_t n, uint64_t* bad_offset = nullptr) noexcept;

// Events of the strict JSON reader below. `text` is the decoded string for
// Key and String, the literal token for numbers, empty otherwise; `value` is
// set for Unsigned only.
enum class JsonEvent : uint8_t {
  BeginObject, EndObject, BeginArray, EndArray, Key,
  String,
  Unsigned,     // an integer in [0, 2^64): no sign, fraction or exponent
  OtherNumber,  // any other number: negative (-0 too), fractional, exponent, or >= 2^64
  True, False, Null,
};

class JsonHandler {
 public:
  virtual ~JsonHandler() = default;
  // The handler may move `text` out.
  virtual void on_event(JsonEvent ev, std::string& text, uint64_t value) = 0;
};

// Reads exactly one RFC 8259 JSON value (whitespace around it allowed; no BOM,
// comments, trailing commas, lone surrogate escapes or raw control characters)
// and reports it to `h` as a stream of events. Iterative: any nesting depth is
// fine. Expects valid UTF-8 (check with is_valid_utf8 first). Returns false at
// the first syntax error, with *error (if given) a short one-line description
// such as "expected ',' or '}' at byte 17". Throws only std::bad_alloc.
bool parse_json_events(const uint8_t* p, uint64_t n, JsonHandler& h, std::string* error);

// `s` in single quotes for a one-line message: control bytes escaped as \xNN,
// names longer than 128 bytes cut (at a character boundary) and marked "...".
std::string quote_name(const std::string& s);

}  // namespace df11
