// Strict safetensors header parser: one test per rule of docs/FORMAT.md section 6.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "safetensors_header.h"
#include "test_util.h"

using namespace df11;

namespace {

const std::string kLabel = "model.safetensors";

std::vector<uint8_t> le64(uint64_t v) {
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

// 8-byte length, the JSON bytes verbatim, then data_size zero bytes.
std::vector<uint8_t> make_file(const std::string& json, uint64_t data_size) {
  std::vector<uint8_t> f(8 + json.size() + data_size, 0);
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(static_cast<uint64_t>(json.size()) >> (8 * i));
  if (!json.empty()) std::memcpy(f.data() + 8, json.data(), json.size());
  return f;
}

Status parse_file(const std::vector<uint8_t>& f, StHeader* out = nullptr) {
  return parse_safetensors(f.data(), f.size(), kLabel, out);
}

Status parse(const std::string& json, uint64_t data_size, StHeader* out = nullptr) {
  return parse_file(make_file(json, data_size), out);
}

// The code is `want`, the message one line "<label>: ... (<ErrorName>)", and
// parse_safetensors_json on the same bytes agrees.
void check_status(const Status& s, Error want) {
  INFO(s.message);
  REQUIRE(error_name(s.code) == std::string(error_name(want)));
  REQUIRE(s.message.rfind(kLabel + ": ", 0) == 0);
  const std::string suffix = std::string(" (") + error_name(want) + ")";
  REQUIRE(s.message.size() > suffix.size());
  REQUIRE(s.message.compare(s.message.size() - suffix.size(), suffix.size(), suffix) == 0);
  REQUIRE(s.message.find('\n') == std::string::npos);
  REQUIRE(s.message.find('\r') == std::string::npos);
}

void expect(const std::string& json, uint64_t data_size, Error want) {
  INFO("header: " << json);
  StHeader h;
  h.json_size = 12345;  // left unchanged on failure
  const Status s = parse(json, data_size, &h);
  check_status(s, want);
  REQUIRE(h.json_size == 12345);
  const Status j = parse_safetensors_json(reinterpret_cast<const uint8_t*>(json.data()), json.size(), data_size,
                                          kLabel, nullptr);
  REQUIRE(j.code == s.code);
  REQUIRE(j.message == s.message);
}

// One valid tensor entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                  uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace

TEST_CASE("safetensors: a valid header parses, tensors in data order", "[safetensors]") {
  // JSON order is not offset order; several dtypes, a 0-d tensor, empty
  // tensors (two sharing an offset with a non-empty one), __metadata__ in the
  // middle, escapes in names, and the header padded with spaces.
  const std::string json =
      "{ " + entry("w", "BF16", "[2, 3]", 16, 28) + ",\n" +  //
      entry("scalar", "F64", "[]", 8, 16) + "," +             //
      "\"__metadata__\": {\"format\": \"pt\", \"note\": \"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00\"}," +
      entry("zz_empty", "F32", "[0, 4]", 8, 8) + "," +        //
      entry("a_empty", "I64", "[3, 0]", 8, 8) + "," +         //
      entry("bias", "F32", "[2]", 0, 8) + "," +               //
      entry("mask", "BOOL", "[4]", 28, 32) + "," +            //
      entry("tab\\tname \\u0041", "U8", "[1,1,1]", 32, 33) + "," +  //
      entry("e5", "F8_E5M2", "[1]", 33, 34) + "," + entry("e4", "F8_E4M3", "[1]", 34, 35) + "," +
      entry("i8", "I8", "[1]", 35, 36) + "," + entry("i16", "I16", "[1]", 36, 38) + "," +
      entry("u16", "U16", "[1]", 38, 40) + "," + entry("f16", "F16", "[1]", 40, 42) + "," +
      entry("i32", "I32", "[1]", 42, 46) + "," + entry("u32", "U32", "[1]", 46, 50) + "," +
      entry("u64", "U64", "[1]", 50, 58) + " }" + std::string(7, ' ');
  StHeader h;
  const Status s = parse(json, 58, &h);
  INFO(s.message);
  REQUIRE(s.ok());
  REQUIRE(h.json_size == json.size());
  REQUIRE(h.data_size == 58);
  const std::vector<std::string> want = {"bias", "a_empty", "zz_empty", "scalar", "w", "mask", "tab\tname A",
                                         "e5",   "e4",      "i8",       "i16",    "u16", "f16", "i32",
                                         "u32",  "u64"};
  REQUIRE(h.tensors.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(h.tensors[i].name == want[i]);
    if (i) CHECK(h.tensors[i - 1].begin <= h.tensors[i].begin);
  }
  const StTensor& w = h.tensors[4];
  REQUIRE(w.dtype == Dtype::BF16);
  REQUIRE(w.shape == std::vector<uint64_t>{2, 3});
  REQUIRE(w.begin == 16);
  REQUIRE(w.end == 28);
  const StTensor& scalar = h.tensors[3];
  REQUIRE(scalar.dtype == Dtype::F64);
  REQUIRE(scalar.shape.empty());
  REQUIRE(h.tensors[1].shape == std::vector<uint64_t>{3, 0});
  REQUIRE(h.tensors[1].begin == h.tensors[1].end);

  // The embedded-JSON entry point gives the same result.
  StHeader j;
  REQUIRE(parse_safetensors_json(reinterpret_cast<const uint8_t*>(json.data()), json.size(), 58, kLabel, &j).ok());
  REQUIRE(j.tensors.size() == h.tensors.size());
  for (size_t i = 0; i < j.tensors.size(); ++i) REQUIRE(j.tensors[i].name == h.tensors[i].name);
}

TEST_CASE("safetensors: minimal valid files", "[safetensors]") {
  StHeader h;
  REQUIRE(parse("{}", 0, &h).ok());
  REQUIRE(h.tensors.empty());
  REQUIRE(parse("{\"__metadata__\":{}}", 0).ok());
  REQUIRE(parse(" \t\r\n{ } ", 0).ok());
  // Only empty tensors, all at offset 0.
  REQUIRE(parse("{" + entry("b", "BF16", "[0]", 0, 0) + "," + entry("a", "F32", "[5,0,7]", 0, 0) + "}", 0, &h).ok());
  REQUIRE(h.tensors.size() == 2);
  REQUIRE(h.tensors[0].name == "a");
  // A 0 among huge dims: 0 elements, not an overflow.
  REQUIRE(parse("{" + entry("z", "F64", "[18446744073709551615, 18446744073709551615, 0]", 0, 0) + "}", 0).ok());
  // Largest offsets that fit.
  REQUIRE(parse("{" + entry("u", "U8", "[4]", 0, 4) + "}", 4, &h).ok());
  REQUIRE(dtype_size(Dtype::BF16) == 2);
  REQUIRE(std::string(dtype_name(Dtype::F8_E4M3)) == "F8_E4M3");
  Dtype d;
  REQUIRE(dtype_from_name("U64", &d));
  REQUIRE(d == Dtype::U64);
  REQUIRE_FALSE(dtype_from_name("bf16", &d));
}

TEST_CASE("safetensors: a header length that cannot be says what the file is, where it knows", "[safetensors]") {
  auto message_for = [](const std::string& bytes) {
    const std::vector<uint8_t> f(bytes.begin(), bytes.end());
    const Status s = parse_safetensors(f.data(), f.size(), kLabel, nullptr);
    INFO(s.message);
    CHECK((s.code == Error::StHeaderTooLarge || s.code == Error::StHeaderPastEnd));
    CHECK(s.message.find('\n') == std::string::npos);
    return s.message;
  };
  // What `git clone` without git-lfs leaves under the weights' name.
  const std::string lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:" + std::string(64, 'a') +
                          "\nsize 4976698672\n";
  CHECK(message_for(lfs).find("a Git LFS pointer, not the data (run `git lfs pull`") != std::string::npos);
  CHECK(message_for(std::string("\x89" "DF11\r\n\x1a", 8) + std::string(200, '\0'))
            .find("a df11 container (decompress, verify or info it)") != std::string::npos);
  CHECK(message_for(std::string("\x28\xb5\x2f\xfd", 4) + std::string(60, 'z')).find("zstd-compressed") !=
        std::string::npos);
  CHECK(message_for("PK\x03\x04" + std::string(60, 'z')).find("zip archive") != std::string::npos);
  CHECK(message_for("GGUF" + std::string(60, 'z')).find("GGUF") != std::string::npos);
  CHECK(message_for("{\"model_type\": \"llama\", \"hidden_size\": 4096}\n").find("looks like JSON text") !=
        std::string::npos);
  // Nothing recognised: the plain message, ending with the rule's name.
  const std::string plain = message_for(std::string(8, '\xff') + "abc");
  CHECK(plain.find("; the file") == std::string::npos);
  CHECK(plain.find("is above the limit of 100000000 bytes (StHeaderTooLarge)") != std::string::npos);
}

TEST_CASE("safetensors: StTruncated", "[safetensors]") {
  for (size_t n = 0; n < 8; ++n) {
    const std::vector<uint8_t> f(n, 0);
    check_status(parse_safetensors(f.data(), f.size(), kLabel, nullptr), Error::StTruncated);
  }
  check_status(parse_safetensors(nullptr, 0, kLabel, nullptr), Error::StTruncated);
}

TEST_CASE("safetensors: StHeaderTooLarge", "[safetensors]") {
  std::vector<uint8_t> f = le64(kMaxHeaderSize + 1);
  f.resize(f.size() + 16, ' ');
  check_status(parse_file(f), Error::StHeaderTooLarge);
  f = le64(~uint64_t{0});  // would overflow 8 + N
  check_status(parse_file(f), Error::StHeaderTooLarge);
  const uint8_t brace = '{';
  check_status(parse_safetensors_json(&brace, kMaxHeaderSize + 1, 0, kLabel, nullptr), Error::StHeaderTooLarge);
  // Exactly the limit is allowed (and here runs past the end instead).
  f = le64(kMaxHeaderSize);
  check_status(parse_file(f), Error::StHeaderPastEnd);
}

TEST_CASE("safetensors: StHeaderPastEnd", "[safetensors]") {
  std::vector<uint8_t> f = make_file("{}", 0);
  f[0] = 3;  // N = 3, but only 2 bytes follow
  check_status(parse_file(f), Error::StHeaderPastEnd);
  f = le64(1);
  check_status(parse_file(f), Error::StHeaderPastEnd);
}

TEST_CASE("safetensors: StHeaderNotUtf8", "[safetensors]") {
  const char* bad[] = {
      "\xff",              // never valid
      "\x80",              // lone continuation byte
      "\xc0\xaf",          // overlong '/'
      "\xe0\x80\xaf",      // overlong, 3 bytes
      "\xed\xa0\x80",      // UTF-16 surrogate D800
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xf8\x88\x80\x80\x80",
      "\xe2\x82",          // truncated sequence (before the closing quote)
  };
  for (const char* b : bad) {
    const std::string json = std::string("{\"__metadata__\":{\"k\":\"") + b + "\"}}";
    expect(json, 0, Error::StHeaderNotUtf8);
  }
  // A multi-byte sequence cut by the end of the header.
  expect("{}\xe2\x82", 0, Error::StHeaderNotUtf8);
  // Invalid UTF-8 wins over invalid JSON.
  expect("\xff{", 0, Error::StHeaderNotUtf8);
}

TEST_CASE("safetensors: StHeaderInvalidJson", "[safetensors]") {
  const std::string bad[] = {
      "",
      "   ",
      "[]",                                   // not an object
      "\"tensors\"",
      "42",
      "null",
      "{",
      "{\"a\"}",
      "{\"a\":}",
      "{\"__metadata__\":{},}",               // trailing comma
      "{} {}",                                // two values
      "{}x",
      std::string("{}\0\0", 4),               // NUL padding
      "\xef\xbb\xbf{}",                       // BOM
      "{'a':1}",                              // single quotes
      "{/* c */}",                            // comment
      "{\"__metadata__\":{\"k\":\"\\ud800\"}}",   // lone high surrogate
      "{\"__metadata__\":{\"k\":\"\\udc00\"}}",   // lone low surrogate
      "{\"__metadata__\":{\"k\":\"\\x41\"}}",     // bad escape
      "{\"__metadata__\":{\"k\":\"a\tb\"}}",      // raw control character
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}",  // leading zero
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[+1],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[NaN],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}",  // unclosed
      // A semantic error earlier in the document does not hide a syntax error.
      "{\"a\":{\"dtype\":\"XX\",\"shape\":[1],\"data_offsets\":[0,1]}",
  };
  for (const std::string& json : bad) expect(json, 0, Error::StHeaderInvalidJson);
}

TEST_CASE("safetensors: StDuplicateName", "[safetensors]") {
  const std::string a = entry("a", "U8", "[1]", 0, 1);
  expect("{" + a + "," + entry("a", "U8", "[1]", 1, 2) + "}", 2, Error::StDuplicateName);
  // Equal after unescaping.
  expect("{" + a + "," + entry("\\u0061", "U8", "[1]", 1, 2) + "}", 2, Error::StDuplicateName);
  expect("{\"__metadata__\":{},\"__metadata__\":{}}", 0, Error::StDuplicateName);
  expect("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, Error::StDuplicateName);
  expect("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         Error::StDuplicateName);
}

TEST_CASE("safetensors: StInvalidMetadata", "[safetensors]") {
  expect("{\"__metadata__\":[]}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":\"pt\"}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":null}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":{\"n\":1}}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":{\"n\":true}}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":{\"n\":{\"x\":\"y\"}}}", 0, Error::StInvalidMetadata);
  expect("{\"__metadata__\":{\"n\":[\"y\"]}}", 0, Error::StInvalidMetadata);
}

TEST_CASE("safetensors: StInvalidTensorEntry", "[safetensors]") {
  expect("{\"a\":[]}", 0, Error::StInvalidTensorEntry);
  expect("{\"a\":\"U8\"}", 0, Error::StInvalidTensorEntry);
  expect("{\"a\":7}", 0, Error::StInvalidTensorEntry);
  expect("{\"a\":null}", 0, Error::StInvalidTensorEntry);
  expect("{\"a\":{}}", 0, Error::StInvalidTensorEntry);
  expect("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, Error::StInvalidTensorEntry);
  expect("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, Error::StInvalidTensorEntry);
  expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, Error::StInvalidTensorEntry);
  expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":{}}}", 1,
         Error::StInvalidTensorEntry);
  // Keys are case-sensitive.
  expect("{\"a\":{\"Dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, Error::StInvalidTensorEntry);
}

TEST_CASE("safetensors: StUnknownDtype", "[safetensors]") {
  for (const char* d : {"\"bf16\"", "\"BF32\"", "\"\"", "\"F8_E4M3FN\"", "\"C128\"", "2", "null", "[\"U8\"]"}) {
    const std::string json = std::string("{\"a\":{\"dtype\":") + d + ",\"shape\":[1],\"data_offsets\":[0,1]}}";
    expect(json, 1, Error::StUnknownDtype);
  }
}

TEST_CASE("safetensors: StInvalidShape", "[safetensors]") {
  const char* shapes[] = {
      "1",   "\"[1]\"", "null", "{}", "[-1]", "[-0]", "[1.0]", "[1e2]", "[1.5]",
      "[18446744073709551616]",  // 2^64
      "[1e400]",                 // beyond double, still a JSON number
      "[\"1\"]", "[[1]]", "[null]", "[true]", "[1,{}]",
  };
  for (const char* sh : shapes) {
    const std::string json = std::string("{\"a\":{\"dtype\":\"U8\",\"shape\":") + sh + ",\"data_offsets\":[0,1]}}";
    expect(json, 1, Error::StInvalidShape);
  }
  expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[" + std::string(400, '9') + "],\"data_offsets\":[0,1]}}", 1,
         Error::StInvalidShape);
}

TEST_CASE("safetensors: StInvalidOffsets", "[safetensors]") {
  const char* offs[] = {"[]",    "[0]",      "[0,1,1]", "[0,-1]",  "[-0,1]", "[0,1.0]", "[0,1e0]",
                        "[0,\"1\"]", "\"0,1\"", "{}",    "null",   "[[0,1]]", "[0,18446744073709551616]"};
  for (const char* o : offs) {
    const std::string json = std::string("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":") + o + "}}";
    expect(json, 1, Error::StInvalidOffsets);
  }
}

TEST_CASE("safetensors: StOffsetsReversed", "[safetensors]") {
  expect("{" + entry("a", "U8", "[1]", 5, 4) + "}", 5, Error::StOffsetsReversed);
  expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[18446744073709551615,0]}}", 0,
         Error::StOffsetsReversed);
}

TEST_CASE("safetensors: StSizeMismatch", "[safetensors]") {
  expect("{" + entry("a", "F32", "[2,3]", 0, 20) + "}", 20, Error::StSizeMismatch);
  expect("{" + entry("a", "BF16", "[]", 0, 1) + "}", 1, Error::StSizeMismatch);    // 0-d: 1 element
  expect("{" + entry("a", "BF16", "[0]", 0, 2) + "}", 2, Error::StSizeMismatch);   // empty but has bytes
  // product(shape) overflows 64 bits, and wraps to 0.
  expect("{" + entry("a", "U8", "[4294967296,4294967296]", 0, 0) + "}", 0, Error::StSizeMismatch);
  // product(shape) fits, times the dtype size does not (wraps to 0).
  expect("{" + entry("a", "F32", "[4611686018427387904]", 0, 0) + "}", 0, Error::StSizeMismatch);
  expect("{" + entry("a", "U64", "[2305843009213693952]", 0, 0) + "}", 0, Error::StSizeMismatch);
}

TEST_CASE("safetensors: StOffsetsOverlap", "[safetensors]") {
  expect("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 4, 12) + "}", 12,
         Error::StOffsetsOverlap);
  // The same range twice.
  expect("{" + entry("b", "U8", "[8]", 0, 8) + "," + entry("a", "U8", "[8]", 0, 8) + "}", 8, Error::StOffsetsOverlap);
  // One inside another.
  expect("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[2]", 2, 4) + "}", 8, Error::StOffsetsOverlap);
  // An empty tensor strictly inside another's bytes.
  expect("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("e", "U8", "[0]", 3, 3) + "}", 8, Error::StOffsetsOverlap);
  // The message names both tensors.
  const Status s = parse("{" + entry("x", "U8", "[8]", 0, 8) + "," + entry("y", "U8", "[8]", 4, 12) + "}", 12);
  REQUIRE(s.message == "model.safetensors: tensors 'x' and 'y' overlap (StOffsetsOverlap)");
}

TEST_CASE("safetensors: StOffsetsHole", "[safetensors]") {
  expect("{" + entry("a", "U8", "[4]", 4, 8) + "}", 8, Error::StOffsetsHole);  // first does not begin at 0
  expect("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 5, 9) + "}", 9, Error::StOffsetsHole);
  // An empty tensor does not fill a hole.
  expect("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("e", "U8", "[0]", 6, 6) + "}", 6, Error::StOffsetsHole);
}

TEST_CASE("safetensors: StOffsetsOutOfBounds", "[safetensors]") {
  expect("{" + entry("a", "F32", "[4]", 0, 16) + "}", 8, Error::StOffsetsOutOfBounds);
  expect("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 4, 8) + "}", 6,
         Error::StOffsetsOutOfBounds);
  // A truncated file: the data section is shorter than the header says.
  std::vector<uint8_t> f = make_file("{" + entry("a", "BF16", "[8]", 0, 16) + "}", 16);
  f.resize(f.size() - 1);
  check_status(parse_file(f), Error::StOffsetsOutOfBounds);
}

TEST_CASE("safetensors: StTrailingBytes", "[safetensors]") {
  expect("{" + entry("a", "U8", "[4]", 0, 4) + "}", 5, Error::StTrailingBytes);
  expect("{}", 3, Error::StTrailingBytes);
  expect("{\"__metadata__\":{\"a\":\"b\"}," + entry("e", "U8", "[0]", 0, 0) + "}", 1, Error::StTrailingBytes);
}

TEST_CASE("safetensors: messages are one line and name the tensor", "[safetensors]") {
  // A name with a newline and a quote is escaped, a very long one cut.
  const std::string json = "{\"line\\nbreak'\":{\"dtype\":\"Q\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  const Status s = parse(json, 1);
  check_status(s, Error::StUnknownDtype);
  REQUIRE(s.message.find("line\\x0Abreak'") != std::string::npos);
  REQUIRE(s.message.find("'Q'") != std::string::npos);
  const std::string long_name(100000, 'n');
  const Status l = parse("{" + entry(long_name, "U8", "[2]", 0, 1) + "}", 1);
  check_status(l, Error::StSizeMismatch);
  REQUIRE(l.message.size() < 400);
}

TEST_CASE("safetensors: hostile inputs never crash", "[safetensors]") {
  // Deep nesting: no recursion in the reader.
  expect("{\"a\":" + std::string(1000000, '['), 0, Error::StHeaderInvalidJson);
  expect("{\"a\":{\"dtype\":\"U8\",\"shape\":" + std::string(200000, '[') + std::string(200000, ']') +
             ",\"data_offsets\":[0,1]}}",
         1, Error::StInvalidShape);
  expect("{\"__metadata__\":{\"k\":" + std::string(200000, '{') + "}", 0, Error::StHeaderInvalidJson);

  // Every truncation and single-byte change of a valid file: an St* error or Ok, no exception.
  const std::string json = "{\"__metadata__\":{\"format\":\"pt\"}," + entry("a", "BF16", "[2,2]", 0, 8) + "," +
                           entry("b", "F32", "[]", 8, 12) + "," + entry("c", "U8", "[0]", 12, 12) + "}  ";
  const std::vector<uint8_t> good = make_file(json, 12);
  REQUIRE(parse_file(good).ok());
  for (size_t n = 0; n < good.size(); ++n) {
    const std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    const Status s = parse_safetensors(cut.data(), cut.size(), kLabel, nullptr);
    REQUIRE(s.code != Error::Ok);
  }
  std::mt19937_64 rng(7);
  const uint8_t interesting[] = {0, 0x7f, 0x80, 0xff, '{', '}', '[', ']', '"', '\\', ',', ':', '-', '.', 'e', '0', '9'};
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t v : interesting) {
      std::vector<uint8_t> f = good;
      f[i] = v;
      StHeader h;
      const Status s = parse_safetensors(f.data(), f.size(), kLabel, &h);
      if (s.ok()) continue;
      REQUIRE(std::string(error_name(s.code)).rfind("St", 0) == 0);
    }
    std::vector<uint8_t> f = good;
    f[i] = static_cast<uint8_t>(rng());
    (void)parse_safetensors(f.data(), f.size(), kLabel, nullptr);
  }
}

TEST_CASE("safetensors: the shared GPT-2 file parses", "[safetensors]") {
  const std::string path = df11test::shared_gpt2_path();
  if (path.empty()) {
    WARN("../shared/testdata/gpt2-small-h0-5.safetensors is absent; skipping");
    return;
  }
  const std::vector<uint8_t> f = df11test::read_file(path);
  StHeader h;
  const Status s = parse_safetensors(f.data(), f.size(), "gpt2-small-h0-5.safetensors", &h);
  INFO(s.message);
  REQUIRE(s.ok());
  size_t bf16 = 0, f32 = 0;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const StTensor& t = h.tensors[i];
    if (t.dtype == Dtype::BF16) ++bf16;
    if (t.dtype == Dtype::F32) ++f32;
    if (i) REQUIRE(h.tensors[i - 1].end == t.begin);
  }
  REQUIRE(bf16 == 24);
  REQUIRE(f32 == 48);
  REQUIRE(h.tensors.size() == 72);
  REQUIRE(8 + h.json_size + h.data_size == f.size());
  REQUIRE(h.tensors.back().end == h.data_size);
}

TEST_CASE("safetensors: the dtypes of safetensors 0.8, sub-byte ones in whole bytes", "[safetensors]") {
  // Sizes as safetensors 0.8.0 writes and loads them (checked against its
  // safe_open): F4 packs two elements a byte, F6_* four in three bytes.
  const struct {
    const char* dtype;
    uint64_t bits;
    const char* shape;
    uint64_t bytes;
  } ok[] = {{"F4", 4, "[2, 3]", 3},        {"F4", 4, "[8192]", 4096},    {"F6_E2M3", 6, "[4]", 3},
            {"F6_E3M2", 6, "[2, 8]", 12},  {"F8_E8M0", 8, "[5]", 5},     {"F8_E4M3FNUZ", 8, "[3]", 3},
            {"F8_E5M2FNUZ", 8, "[3]", 3}, {"C64", 64, "[2]", 16},       {"F4", 4, "[0]", 0}};
  for (const auto& c : ok) {
    INFO(c.dtype << " " << c.shape);
    StHeader h;
    const Status s = parse("{" + entry("t", c.dtype, c.shape, 0, c.bytes) + "}", c.bytes, &h);
    INFO(s.message);
    REQUIRE(s.ok());
    REQUIRE(h.tensors.size() == 1);
    Dtype d;
    REQUIRE(dtype_from_name(c.dtype, &d));
    CHECK(h.tensors[0].dtype == d);
    CHECK(dtype_bits(d) == c.bits);
    CHECK(dtype_size(d) == (c.bits < 8 ? 1 : c.bits / 8));
    CHECK(std::string(dtype_name(d)) == c.dtype);
  }
  // Elements that end inside a byte, as safetensors refuses them, and sizes
  // that are whole but wrong.
  const struct {
    const char* dtype;
    const char* shape;
    uint64_t bytes;
  } bad[] = {{"F4", "[7]", 4}, {"F4", "[7]", 3}, {"F4", "[]", 1}, {"F6_E2M3", "[5]", 4}, {"F6_E3M2", "[1]", 1},
             {"F4", "[8]", 5}, {"C64", "[2]", 8}, {"F8_E8M0", "[3]", 4}};
  for (const auto& c : bad) {
    INFO(c.dtype << " " << c.shape << " in " << c.bytes << " bytes");
    expect("{" + entry("t", c.dtype, c.shape, 0, c.bytes) + "}", c.bytes, Error::StSizeMismatch);
  }
  const Status s = parse("{" + entry("t", "F4", "[7]", 0, 4) + "}", 4);
  CHECK(s.message == kLabel + ": tensor 't' of shape [7] and dtype F4 holds 28 bits, not a whole number of bytes "
                              "(StSizeMismatch)");
  // Past 2^64 bits (but within 2^64 bytes), counted exactly in the message.
  const Status big = parse("{" + entry("t", "F4", "[4611686018427387905]", 0, 0) + "}", 0);
  CHECK(big.message == kLabel + ": tensor 't' of shape [4611686018427387905] and dtype F4 holds "
                                "18446744073709551620 bits, not a whole number of bytes (StSizeMismatch)");
  // Names the newer safetensors does not have either stay unknown.
  for (const char* name : {"F8_E4M3FN", "C128", "U4", "I4", "f4", "E8M0"})
    expect("{" + entry("t", name, "[8]", 0, 8) + "}", 8, Error::StUnknownDtype);
  // A product past 2^64 bytes, with the sub-byte factor too.
  expect("{" + entry("t", "F4", "[36893488147419103232]", 0, 0) + "}", 0, Error::StInvalidShape);
  expect("{" + entry("t", "C64", "[4294967296, 4294967296]", 0, 0) + "}", 0, Error::StSizeMismatch);
}
