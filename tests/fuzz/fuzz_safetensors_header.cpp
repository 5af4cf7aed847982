// Fuzz target 1: the strict safetensors header parser (formats/safetensors_header.h).
// Input: a whole safetensors file (8-byte length, JSON, data). The same bytes
// are also fed to parse_safetensors_json with the data size taken from the
// length prefix, and to the UTF-8 and JSON helpers.
#include <string>

#include "fuzz_targets.h"
#include "safetensors_header.h"

namespace {

struct CountingHandler : df11::JsonHandler {
  uint64_t events = 0;
  int64_t depth = 0;
  void on_event(df11::JsonEvent ev, std::string&, uint64_t) override {
    ++events;
    if (ev == df11::JsonEvent::BeginObject || ev == df11::JsonEvent::BeginArray) ++depth;
    if (ev == df11::JsonEvent::EndObject || ev == df11::JsonEvent::EndArray) --depth;
    DF11_FUZZ_CHECK(depth >= 0);
  }
};

// Invariants of a successfully parsed header (docs/FORMAT.md section 6).
void check_header(const df11::StHeader& h, uint64_t data_size) {
  DF11_FUZZ_CHECK(h.data_size == data_size);
  uint64_t expect_begin = 0;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const df11::StTensor& t = h.tensors[i];
    DF11_FUZZ_CHECK(t.begin <= t.end && t.end <= data_size);
    DF11_FUZZ_CHECK(t.begin == expect_begin);  // sorted, no hole, no overlap
    expect_begin = t.end;
    uint64_t elems = 1;
    for (uint64_t d : t.shape) {
      DF11_FUZZ_CHECK(d == 0 || elems <= UINT64_MAX / d);
      elems *= d;
    }
    const uint64_t eb = df11::dtype_bits(t.dtype);
    DF11_FUZZ_CHECK(eb > 0);
    const unsigned __int128 bits = static_cast<unsigned __int128>(elems) * eb;
    DF11_FUZZ_CHECK(bits % 8 == 0 && bits / 8 == t.end - t.begin);
    df11::Dtype back;
    DF11_FUZZ_CHECK(df11::dtype_from_name(df11::dtype_name(t.dtype), &back) && back == t.dtype);
  }
  DF11_FUZZ_CHECK(expect_begin == data_size);
}

}  // namespace

extern "C" int df11_fuzz_safetensors_header(const uint8_t* data, size_t size) {
  df11::StHeader h;
  const df11::Status s = df11::parse_safetensors(data, size, "fuzz.safetensors", &h);
  if (s.ok()) {
    DF11_FUZZ_CHECK(size >= 8 + h.json_size);
    check_header(h, size - 8 - h.json_size);
  } else {
    DF11_FUZZ_CHECK(s.message.find('\n') == std::string::npos);
    DF11_FUZZ_CHECK(s.message.rfind("fuzz.safetensors: ", 0) == 0);
  }
  // The embedded-header entry point (used by the .df11 reader) on the same bytes.
  if (size >= 8) {
    uint64_t data_size = 0;
    for (int i = 0; i < 8; ++i) data_size |= uint64_t{data[i]} << (8 * i);
    df11::StHeader j;
    const df11::Status sj = df11::parse_safetensors_json(data + 8, size - 8, data_size, "fuzz", &j);
    if (sj.ok()) check_header(j, data_size);
    // The two entry points agree when the file has exactly this shape.
    if (s.ok() && h.json_size == size - 8) {
      const df11::Status again = df11::parse_safetensors_json(data + 8, size - 8, 0, "fuzz.safetensors", nullptr);
      DF11_FUZZ_CHECK(again.ok());
    }
  }
  // The helpers on their own.
  uint64_t bad = 0;
  if (df11::is_valid_utf8(data, size, &bad)) {
    CountingHandler ch;
    std::string err;
    if (df11::parse_json_events(data, size, ch, &err)) DF11_FUZZ_CHECK(ch.depth == 0);
  } else {
    DF11_FUZZ_CHECK(bad < size);
  }
  const std::string q = df11::quote_name(std::string(reinterpret_cast<const char*>(data), size));
  DF11_FUZZ_CHECK(q.find('\n') == std::string::npos);
  return 0;
}
