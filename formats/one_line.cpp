// df11::one_line: how df11 puts a name into a one-line message.
#include "df11.h"

#include <cstdio>

namespace df11 {

namespace {
void append_hex(std::string& out, unsigned char u) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "\\x%02x", u);
  out += hex;
}
}  // namespace

std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      append_hex(out, u);
      append_hex(out, static_cast<unsigned char>(s[++i]));
    } else if (u >= 0x20 && u != 0x7F) {
      out += s[i];
    } else if (u == '\n') {
      out += "\\n";
    } else if (u == '\t') {
      out += "\\t";
    } else if (u == '\r') {
      out += "\\r";
    } else {
      append_hex(out, u);
    }
  }
  return out;
}

}  // namespace df11
