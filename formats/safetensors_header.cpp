// Strict safetensors header parser (docs/FORMAT.md section 6).
//
// The JSON is read by a small event-based reader of our own rather than by
// building a nlohmann::json tree: a tree costs tens of bytes per JSON byte,
// silently keeps the last of two equal keys, skips a BOM, and rejects numbers
// beyond the double range as a syntax error where the rules want the error of
// the field that holds them. Here every number is classified from its text.
//
// Order of checks: length prefix, UTF-8, JSON syntax (the whole header), then
// the first rule broken in document order (within one tensor entry: keys,
// dtype, shape, data_offsets, begin <= end, size), then the layout rules over
// the tensors sorted in file data order.
#include "safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <unordered_set>

namespace df11 {

namespace {

struct DtypeInfo {
  const char* name;
  uint64_t bits;
};

constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 8},  {"U8", 8},       {"I8", 8},       {"F8_E5M2", 8}, {"F8_E4M3", 8},     {"I16", 16},
    {"U16", 16},  {"F16", 16},     {"BF16", 16},    {"I32", 32},    {"U32", 32},        {"F32", 32},
    {"F64", 64},  {"I64", 64},     {"U64", 64},     {"F4", 4},      {"F6_E2M3", 6},     {"F6_E3M2", 6},
    {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"C64", 64},
};
constexpr size_t kDtypeCount = sizeof(kDtypes) / sizeof(kDtypes[0]);
static_assert(kDtypeCount == static_cast<size_t>(Dtype::C64) + 1, "dtype table matches the enum");

Status make_status(const std::string& label, Error code, const std::string& what) {
  Status s;
  s.code = code;
  s.message = label + ": " + what + " (" + error_name(code) + ")";
  return s;
}

// Used where even building a message may fail for lack of memory.
Status out_of_memory(const std::string& label) noexcept {
  Status s;
  s.code = Error::Io;
  try {
    s.message = label + ": out of memory while parsing the safetensors header (Io)";
  } catch (...) {
  }
  return s;
}

inline bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

std::string describe_byte(uint8_t c) {
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  static const char* hex = "0123456789ABCDEF";
  return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A short printable excerpt of a number's text for messages.
std::string short_text(const std::string& s) {
  std::string out;
  for (char ch : s.size() > 40 ? s.substr(0, 40) : s) {
    const uint8_t c = static_cast<uint8_t>(ch);
    out += (c >= 0x20 && c < 0x7F) ? ch : '?';
  }
  if (s.size() > 40) out += "...";
  return out;
}

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i == 8) {
      s += ", ... (" + std::to_string(shape.size()) + " dims)";
      break;
    }
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

const char* kind_of(JsonEvent ev) {
  switch (ev) {
    case JsonEvent::BeginObject: return "an object";
    case JsonEvent::BeginArray: return "an array";
    case JsonEvent::String: return "a string";
    case JsonEvent::Unsigned: return "a number";
    case JsonEvent::OtherNumber: return "a number";
    case JsonEvent::True:
    case JsonEvent::False: return "a boolean";
    case JsonEvent::Null: return "null";
    default: return "a value";
  }
}

// Semantic checks of the safetensors header, driven by the JSON events.
// Depth = number of containers open: root members are at depth 1, fields of a
// tensor entry at depth 2, shape / data_offsets elements at depth 3. After the
// first error everything is ignored (the reader still checks the syntax).
class StHandler final : public JsonHandler {
 public:
  explicit StHandler(const std::string& label) : label_(label) {}

  bool failed() const { return failed_; }
  const Status& status() const { return status_; }
  std::vector<StTensor>& tensors() { return tensors_; }

  void on_event(JsonEvent ev, std::string& text, uint64_t value) override {
    switch (ev) {
      case JsonEvent::Key:
        if (!failed_) on_key(text);
        return;
      case JsonEvent::EndObject:
      case JsonEvent::EndArray:
        --depth_;
        if (!failed_) on_end(ev);
        return;
      default:
        if (!failed_) on_value(ev, text, value);
        if (ev == JsonEvent::BeginObject || ev == JsonEvent::BeginArray) ++depth_;
        return;
    }
  }

 private:
  enum class Field : uint8_t { None, Dtype, Shape, Offsets, Unknown };

  struct Entry {
    std::string name;
    bool seen_dtype = false, seen_shape = false, seen_offsets = false;
    std::string unknown_key;
    bool has_unknown = false;
    Dtype dtype = Dtype::BOOL;
    std::string dtype_err, shape_err, offsets_err;  // empty: fine so far
    std::vector<uint64_t> shape;
    uint64_t offsets[2] = {0, 0};
    uint64_t offsets_count = 0;
  };

  void fail(Error code, const std::string& what) {
    failed_ = true;
    status_ = make_status(label_, code, what);
  }

  std::string tensor_ref() const { return "tensor " + quote_name(entry_.name); }

  void on_key(std::string& k) {
    if (depth_ == 1) {
      if (!names_.insert(k).second) {
        if (k == "__metadata__")
          fail(Error::StDuplicateName, "'__metadata__' appears twice");
        else
          fail(Error::StDuplicateName, "tensor name " + quote_name(k) + " appears twice");
        return;
      }
      cur_is_meta_ = (k == "__metadata__");
      cur_name_ = std::move(k);
    } else if (depth_ == 2 && in_meta_) {
      if (!meta_keys_.insert(k).second) {
        fail(Error::StDuplicateName, "__metadata__ key " + quote_name(k) + " appears twice");
        return;
      }
      meta_key_ = std::move(k);
    } else if (depth_ == 2 && in_entry_) {
      array_active_ = false;
      bool* seen = nullptr;
      if (k == "dtype") {
        field_ = Field::Dtype;
        seen = &entry_.seen_dtype;
      } else if (k == "shape") {
        field_ = Field::Shape;
        seen = &entry_.seen_shape;
      } else if (k == "data_offsets") {
        field_ = Field::Offsets;
        seen = &entry_.seen_offsets;
      } else {
        field_ = Field::Unknown;
        if (!entry_.has_unknown) {
          entry_.has_unknown = true;
          entry_.unknown_key = std::move(k);
        }
        return;
      }
      if (*seen) {
        fail(Error::StDuplicateName, "key '" + k + "' appears twice in " + tensor_ref());
        return;
      }
      *seen = true;
    }
  }

  void on_value(JsonEvent ev, std::string& text, uint64_t value) {
    switch (depth_) {
      case 0:
        if (ev != JsonEvent::BeginObject)
          fail(Error::StHeaderInvalidJson, std::string("header is ") + kind_of(ev) + ", not a JSON object");
        return;
      case 1:
        if (cur_is_meta_) {
          if (ev == JsonEvent::BeginObject) {
            in_meta_ = true;
            meta_keys_.clear();
          } else {
            fail(Error::StInvalidMetadata, std::string("__metadata__ is ") + kind_of(ev) + ", not an object");
          }
        } else {
          if (ev == JsonEvent::BeginObject) {
            entry_ = Entry();
            entry_.name = std::move(cur_name_);
            in_entry_ = true;
            field_ = Field::None;
            array_active_ = false;
          } else {
            fail(Error::StInvalidTensorEntry,
                 "tensor " + quote_name(cur_name_) + " is " + kind_of(ev) + ", not an object");
          }
        }
        return;
      case 2:
        if (in_meta_) {
          if (ev != JsonEvent::String)
            fail(Error::StInvalidMetadata, "__metadata__ value for key " + quote_name(meta_key_) + " is " +
                                               kind_of(ev) + ", not a string");
          return;
        }
        if (!in_entry_) return;
        switch (field_) {
          case Field::Dtype:
            if (ev != JsonEvent::String)
              entry_.dtype_err = std::string("dtype of ") + tensor_ref() + " is " + kind_of(ev) + ", not a string";
            else if (!dtype_from_name(text, &entry_.dtype))
              entry_.dtype_err = tensor_ref() + " has unknown dtype " + quote_name(text);
            return;
          case Field::Shape:
            if (ev == JsonEvent::BeginArray)
              array_active_ = true;
            else
              entry_.shape_err = "shape of " + tensor_ref() + " is " + kind_of(ev) + ", not an array";
            return;
          case Field::Offsets:
            if (ev == JsonEvent::BeginArray)
              array_active_ = true;
            else
              entry_.offsets_err = "data_offsets of " + tensor_ref() + " is " + kind_of(ev) + ", not an array";
            return;
          default:
            return;
        }
      case 3:
        if (!in_entry_ || !array_active_) return;
        if (field_ == Field::Shape) {
          if (ev == JsonEvent::Unsigned) {
            entry_.shape.push_back(value);
          } else if (entry_.shape_err.empty()) {
            entry_.shape_err = "shape of " + tensor_ref() + " holds " + element_text(ev, text) +
                               ", not a non-negative integer";
          }
        } else if (field_ == Field::Offsets) {
          if (ev == JsonEvent::Unsigned) {
            if (entry_.offsets_count < 2) entry_.offsets[entry_.offsets_count] = value;
          } else if (entry_.offsets_err.empty()) {
            entry_.offsets_err = "data_offsets of " + tensor_ref() + " holds " + element_text(ev, text) +
                                 ", not a non-negative integer";
          }
          ++entry_.offsets_count;
        }
        return;
      default:
        return;
    }
  }

  static std::string element_text(JsonEvent ev, const std::string& text) {
    if (ev == JsonEvent::OtherNumber) return short_text(text);
    return kind_of(ev);
  }

  void on_end(JsonEvent ev) {
    if (depth_ == 1) {
      if (in_meta_) {
        in_meta_ = false;
        meta_keys_.clear();
      } else if (in_entry_) {
        in_entry_ = false;
        finish_entry();
      }
    } else if (depth_ == 2 && in_entry_ && array_active_) {
      array_active_ = false;
      if (ev == JsonEvent::EndArray && field_ == Field::Offsets && entry_.offsets_err.empty() &&
          entry_.offsets_count != 2)
        entry_.offsets_err = "data_offsets of " + tensor_ref() + " has " + std::to_string(entry_.offsets_count) +
                             " elements, not 2";
    }
  }

  void finish_entry() {
    Entry& e = entry_;
    if (e.has_unknown) {
      fail(Error::StInvalidTensorEntry, tensor_ref() + " has unexpected key " + quote_name(e.unknown_key));
      return;
    }
    if (!e.seen_dtype || !e.seen_shape || !e.seen_offsets) {
      const char* missing = !e.seen_dtype ? "dtype" : !e.seen_shape ? "shape" : "data_offsets";
      fail(Error::StInvalidTensorEntry, tensor_ref() + " has no '" + missing + "'");
      return;
    }
    if (!e.dtype_err.empty()) return fail(Error::StUnknownDtype, e.dtype_err);
    if (!e.shape_err.empty()) return fail(Error::StInvalidShape, e.shape_err);
    if (!e.offsets_err.empty()) return fail(Error::StInvalidOffsets, e.offsets_err);
    const uint64_t begin = e.offsets[0], end = e.offsets[1];
    if (begin > end) {
      fail(Error::StOffsetsReversed, tensor_ref() + " has data_offsets [" + std::to_string(begin) + ", " +
                                         std::to_string(end) + "] with begin > end");
      return;
    }
    // product(shape) * bits / 8, exactly: a 0 anywhere makes it 0, else
    // checked (in bits, so that a sub-byte dtype's 4 or 6 count too).
    unsigned __int128 bits = dtype_bits(e.dtype);
    bool overflow = false;
    if (std::find(e.shape.begin(), e.shape.end(), uint64_t{0}) != e.shape.end()) {
      bits = 0;
    } else {
      for (uint64_t d : e.shape)
        if (__builtin_mul_overflow(bits, d, &bits) || bits > (static_cast<unsigned __int128>(UINT64_MAX) << 3 | 7)) {
          overflow = true;
          break;
        }
    }
    if (overflow) {
      fail(Error::StSizeMismatch, tensor_ref() + " of shape " + shape_text(e.shape) + " and dtype " +
                                      dtype_name(e.dtype) + " is larger than 2^64 bytes");
      return;
    }
    if (bits % 8 != 0) {
      std::string count;  // decimal; bits may pass 2^64 (up to 2^67)
      for (unsigned __int128 v = bits; v; v /= 10) count.insert(count.begin(), static_cast<char>('0' + v % 10));
      fail(Error::StSizeMismatch, tensor_ref() + " of shape " + shape_text(e.shape) + " and dtype " +
                                      dtype_name(e.dtype) + " holds " + count + " bits, not a whole number of bytes");
      return;
    }
    const uint64_t bytes = static_cast<uint64_t>(bits / 8);
    if (bytes != end - begin) {
      fail(Error::StSizeMismatch, tensor_ref() + " of shape " + shape_text(e.shape) + " and dtype " +
                                      dtype_name(e.dtype) + " needs " + std::to_string(bytes) +
                                      " bytes but data_offsets span " + std::to_string(end - begin));
      return;
    }
    StTensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.begin = begin;
    t.end = end;
    tensors_.push_back(std::move(t));
  }

  const std::string& label_;
  bool failed_ = false;
  Status status_;
  uint64_t depth_ = 0;

  std::unordered_set<std::string> names_;  // root keys, __metadata__ included
  std::string cur_name_;
  bool cur_is_meta_ = false;

  bool in_meta_ = false;
  std::unordered_set<std::string> meta_keys_;
  std::string meta_key_;

  bool in_entry_ = false;
  Entry entry_;
  Field field_ = Field::None;
  bool array_active_ = false;  // the current field's value is an array (depth 3 = its elements)

  std::vector<StTensor> tensors_;
};

// Layout rules over the tensors in file data order.
Status check_layout(const std::string& label, const std::vector<StTensor>& ts, uint64_t data_size) {
  uint64_t cursor = 0;  // end of the bytes owned so far (tensors before i are contiguous from 0)
  for (size_t i = 0; i < ts.size(); ++i) {
    const StTensor& t = ts[i];
    if (t.begin < cursor)  // then i > 0 and ts[i-1] is non-empty, ending at cursor
      return make_status(label, Error::StOffsetsOverlap,
                         "tensors " + quote_name(ts[i - 1].name) + " and " + quote_name(t.name) + " overlap");
    if (t.begin > cursor) {
      if (i == 0)
        return make_status(label, Error::StOffsetsHole,
                           "data bytes [0, " + std::to_string(t.begin) + ") before the first tensor " +
                               quote_name(t.name) + " belong to no tensor");
      return make_status(label, Error::StOffsetsHole,
                         "data bytes [" + std::to_string(cursor) + ", " + std::to_string(t.begin) +
                             ") between tensors " + quote_name(ts[i - 1].name) + " and " + quote_name(t.name) +
                             " belong to no tensor");
    }
    if (t.end > data_size)
      return make_status(label, Error::StOffsetsOutOfBounds,
                         "tensor " + quote_name(t.name) + " ends at data byte " + std::to_string(t.end) +
                             ", past the end of the data section (" + std::to_string(data_size) + " bytes)");
    cursor = t.end;
  }
  if (cursor != data_size) {
    if (ts.empty())
      return make_status(label, Error::StTrailingBytes,
                         "the data section holds " + std::to_string(data_size) + " bytes but there are no tensors");
    return make_status(label, Error::StTrailingBytes,
                       std::to_string(data_size - cursor) + " data bytes after the last tensor " +
                           quote_name(ts.back().name) + " belong to no tensor");
  }
  return Status::Ok();
}

}  // namespace

const char* dtype_name(Dtype d) noexcept {
  const size_t i = static_cast<size_t>(d);
  return i < kDtypeCount ? kDtypes[i].name : "?";
}

uint64_t dtype_bits(Dtype d) noexcept {
  const size_t i = static_cast<size_t>(d);
  return i < kDtypeCount ? kDtypes[i].bits : 0;
}

uint64_t dtype_size(Dtype d) noexcept {
  const uint64_t bits = dtype_bits(d);
  return bits == 0 ? 0 : bits < 8 ? 1 : bits / 8;
}

bool dtype_from_name(const std::string& name, Dtype* out) noexcept {
  for (size_t i = 0; i < kDtypeCount; ++i)
    if (name == kDtypes[i].name) {
      if (out) *out = static_cast<Dtype>(i);
      return true;
    }
  return false;
}

bool is_valid_utf8(const uint8_t* p, uint64_t n, uint64_t* bad_offset) noexcept {
  uint64_t i = 0;
  auto cont = [&](uint64_t k) { return k < n && (p[k] & 0xC0) == 0x80; };
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    bool ok;
    uint64_t len;
    if (c < 0xC2) {  // continuation byte, or overlong 2-byte form
      ok = false;
      len = 1;
    } else if (c < 0xE0) {
      len = 2;
      ok = cont(i + 1);
    } else if (c < 0xF0) {
      len = 3;
      ok = cont(i + 1) && cont(i + 2) && !(c == 0xE0 && p[i + 1] < 0xA0) &&  // overlong
           !(c == 0xED && p[i + 1] >= 0xA0);                                 // surrogate
    } else if (c < 0xF5) {
      len = 4;
      ok = cont(i + 1) && cont(i + 2) && cont(i + 3) && !(c == 0xF0 && p[i + 1] < 0x90) &&  // overlong
           !(c == 0xF4 && p[i + 1] >= 0x90);                                                // > U+10FFFF
    } else {
      ok = false;
      len = 1;
    }
    if (!ok) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

bool parse_json_events(const uint8_t* p, uint64_t n, JsonHandler& h, std::string* error) {
  std::vector<uint8_t> stack;  // 'o' object, 'a' array
  std::string buf;
  uint64_t pos = 0;
  auto fail = [&](const std::string& what) {
    if (error) *error = what + " at byte " + std::to_string(pos);
    return false;
  };
  auto skip_ws = [&] {
    while (pos < n && is_ws(p[pos])) ++pos;
  };
  auto hex4 = [&](uint32_t* cp) {
    if (n - pos < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const uint8_t c = p[pos + k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    pos += 4;
    *cp = v;
    return true;
  };
  // At the opening quote; leaves the decoded string in buf.
  auto lex_string = [&]() -> bool {
    ++pos;
    buf.clear();
    for (;;) {
      if (pos >= n) return fail("unterminated string");
      const uint8_t c = p[pos];
      if (c == '"') {
        ++pos;
        return true;
      }
      if (c < 0x20) return fail("raw control character " + describe_byte(c) + " in a string");
      if (c != '\\') {
        const uint64_t start = pos;
        while (pos < n && p[pos] != '"' && p[pos] != '\\' && p[pos] >= 0x20) ++pos;
        buf.append(reinterpret_cast<const char*>(p + start), pos - start);
        continue;
      }
      ++pos;
      if (pos >= n) return fail("unterminated string");
      const uint8_t e = p[pos++];
      switch (e) {
        case '"': buf += '"'; break;
        case '\\': buf += '\\'; break;
        case '/': buf += '/'; break;
        case 'b': buf += '\b'; break;
        case 'f': buf += '\f'; break;
        case 'n': buf += '\n'; break;
        case 'r': buf += '\r'; break;
        case 't': buf += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return fail("invalid \\u escape");
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (n - pos < 2 || p[pos] != '\\' || p[pos + 1] != 'u')
              return fail("lone high surrogate in a \\u escape");
            pos += 2;
            if (!hex4(&lo)) return fail("invalid \\u escape");
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("lone high surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(buf, cp);
          break;
        }
        default:
          --pos;
          return fail("invalid escape \\" + describe_byte(e));
      }
    }
  };

  enum class State { Value, Key, After } st = State::Value;
  for (;;) {
    skip_ws();
    if (st == State::Value) {
      if (pos >= n) return fail("unexpected end of the header");
      const uint8_t c = p[pos];
      if (c == '{' || c == '[') {
        const bool obj = c == '{';
        ++pos;
        buf.clear();
        h.on_event(obj ? JsonEvent::BeginObject : JsonEvent::BeginArray, buf, 0);
        skip_ws();
        if (pos < n && p[pos] == (obj ? '}' : ']')) {
          ++pos;
          buf.clear();
          h.on_event(obj ? JsonEvent::EndObject : JsonEvent::EndArray, buf, 0);
          st = State::After;
        } else {
          stack.push_back(obj ? 'o' : 'a');
          st = obj ? State::Key : State::Value;
        }
        continue;
      }
      if (c == '"') {
        if (!lex_string()) return false;
        h.on_event(JsonEvent::String, buf, 0);
        st = State::After;
        continue;
      }
      if (c == '-' || is_digit(c)) {
        const uint64_t start = pos;
        bool integer = true;
        const bool neg = c == '-';
        if (neg) ++pos;
        if (pos >= n || !is_digit(p[pos])) return fail("invalid number");
        if (p[pos] == '0')
          ++pos;
        else
          while (pos < n && is_digit(p[pos])) ++pos;
        if (pos < n && p[pos] == '.') {
          integer = false;
          ++pos;
          if (pos >= n || !is_digit(p[pos])) return fail("invalid number");
          while (pos < n && is_digit(p[pos])) ++pos;
        }
        if (pos < n && (p[pos] == 'e' || p[pos] == 'E')) {
          integer = false;
          ++pos;
          if (pos < n && (p[pos] == '+' || p[pos] == '-')) ++pos;
          if (pos >= n || !is_digit(p[pos])) return fail("invalid number");
          while (pos < n && is_digit(p[pos])) ++pos;
        }
        buf.assign(reinterpret_cast<const char*>(p + start), pos - start);
        uint64_t v = 0;
        bool fits = integer && !neg;
        if (fits)
          for (char d : buf)
            if (__builtin_mul_overflow(v, uint64_t{10}, &v) ||
                __builtin_add_overflow(v, static_cast<uint64_t>(d - '0'), &v)) {
              fits = false;
              break;
            }
        h.on_event(fits ? JsonEvent::Unsigned : JsonEvent::OtherNumber, buf, fits ? v : 0);
        st = State::After;
        continue;
      }
      static const struct {
        const char* word;
        uint64_t len;
        JsonEvent ev;
      } kLiterals[] = {{"true", 4, JsonEvent::True}, {"false", 5, JsonEvent::False}, {"null", 4, JsonEvent::Null}};
      bool matched = false;
      for (const auto& lit : kLiterals)
        if (n - pos >= lit.len && std::memcmp(p + pos, lit.word, lit.len) == 0) {
          pos += lit.len;
          buf.clear();
          h.on_event(lit.ev, buf, 0);
          matched = true;
          break;
        }
      if (!matched) return fail("unexpected " + describe_byte(c));
      st = State::After;
      continue;
    }
    if (st == State::Key) {
      if (pos >= n) return fail("unexpected end of the header");
      if (p[pos] != '"') return fail("expected a string key, found " + describe_byte(p[pos]));
      if (!lex_string()) return false;
      h.on_event(JsonEvent::Key, buf, 0);
      skip_ws();
      if (pos >= n) return fail("unexpected end of the header");
      if (p[pos] != ':') return fail("expected ':', found " + describe_byte(p[pos]));
      ++pos;
      st = State::Value;
      continue;
    }
    // State::After: a value just ended.
    if (stack.empty()) {
      if (pos != n) return fail("unexpected " + describe_byte(p[pos]) + " after the JSON value");
      return true;
    }
    const bool obj = stack.back() == 'o';
    if (pos >= n) return fail("unexpected end of the header");
    const uint8_t c = p[pos];
    if (c == ',') {
      ++pos;
      st = obj ? State::Key : State::Value;
    } else if (c == (obj ? '}' : ']')) {
      ++pos;
      stack.pop_back();
      buf.clear();
      h.on_event(obj ? JsonEvent::EndObject : JsonEvent::EndArray, buf, 0);
    } else {
      return fail(std::string("expected ',' or '") + (obj ? '}' : ']') + "', found " + describe_byte(c));
    }
  }
}

std::string quote_name(const std::string& s) {
  constexpr size_t kMax = 128;
  size_t cut = s.size();
  if (cut > kMax) {
    cut = kMax;
    while (cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xC0) == 0x80) --cut;  // character boundary
  }
  std::string out = "'";
  static const char* hex = "0123456789ABCDEF";
  for (size_t i = 0; i < cut; ++i) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  if (cut < s.size()) out += "...";
  return out;
}

Status parse_safetensors_json(const uint8_t* json, uint64_t json_size, uint64_t data_size,
                              const std::string& label, StHeader* out) {
  try {
    if (json_size > kMaxHeaderSize)
      return make_status(label, Error::StHeaderTooLarge,
                         "header length " + std::to_string(json_size) + " is above the limit of " +
                             std::to_string(kMaxHeaderSize) + " bytes");
    if (json == nullptr && json_size > 0) return make_status(label, Error::Usage, "no header bytes given");
    uint64_t bad = 0;
    if (!is_valid_utf8(json, json_size, &bad))
      return make_status(label, Error::StHeaderNotUtf8,
                         "header is not valid UTF-8 (" + describe_byte(json[bad]) + " at byte " +
                             std::to_string(bad) + ")");
    StHandler handler(label);
    std::string err;
    if (!parse_json_events(json, json_size, handler, &err))
      return make_status(label, Error::StHeaderInvalidJson, "header is not valid JSON: " + err);
    if (handler.failed()) return handler.status();

    std::vector<StTensor>& ts = handler.tensors();
    std::sort(ts.begin(), ts.end(), [](const StTensor& a, const StTensor& b) {
      if (a.begin != b.begin) return a.begin < b.begin;
      if (a.end != b.end) return a.end < b.end;
      return a.name < b.name;
    });
    Status s = check_layout(label, ts, data_size);
    if (!s.ok()) return s;
    if (out) {
      out->json_size = json_size;
      out->data_size = data_size;
      out->tensors = std::move(ts);
    }
    return Status::Ok();
  } catch (...) {  // std::bad_alloc is the only exception the code above can raise
    return out_of_memory(label);
  }
}

namespace {
// What a file that is not safetensors most likely is, from its first bytes,
// for the message of a header length that cannot be: users meet these files
// under a .safetensors name (an LFS pointer from a clone without git-lfs) or
// give them by mistake. "" when nothing is recognised.
std::string what_else(const uint8_t* file, uint64_t size) {
  auto starts = [&](const char* magic, size_t n) { return size >= n && std::memcmp(file, magic, n) == 0; };
  if (starts("version https://git-lfs", 23))
    return "; the file is a Git LFS pointer, not the data (run `git lfs pull`, or download the file itself)";
  if (starts("\x89" "DF11\r\n\x1a", 8)) return "; the file is a df11 container (decompress, verify or info it)";
  if (starts("\x28\xb5\x2f\xfd", 4)) return "; the file is zstd-compressed (zstd -d it first)";
  if (starts("PK\x03\x04", 4)) return "; the file is a zip archive (a PyTorch .bin/.pt checkpoint?), not safetensors";
  if (starts("GGUF", 4)) return "; the file is GGUF, not safetensors";
  if (starts("{", 1) || starts("[", 1)) return "; the file looks like JSON text, not safetensors";
  return "";
}
}  // namespace

Status parse_safetensors(const uint8_t* file, uint64_t file_size, const std::string& label, StHeader* out) {
  try {
    if (file_size < 8 || file == nullptr)
      return make_status(label, Error::StTruncated,
                         "file is " + std::to_string(file == nullptr ? 0 : file_size) +
                             " bytes, shorter than the 8-byte header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
    if (n > kMaxHeaderSize)
      return make_status(label, Error::StHeaderTooLarge,
                         "header length " + std::to_string(n) + " is above the limit of " +
                             std::to_string(kMaxHeaderSize) + " bytes" + what_else(file, file_size));
    if (n > file_size - 8)
      return make_status(label, Error::StHeaderPastEnd,
                         "header length " + std::to_string(n) + " runs past the end of the file (" +
                             std::to_string(file_size) + " bytes)" + what_else(file, file_size));
    return parse_safetensors_json(file + 8, n, file_size - 8 - n, label, out);
  } catch (...) {
    return out_of_memory(label);
  }
}

}  // namespace df11
