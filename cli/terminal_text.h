// Text that df11 prints for people: one line per message, whatever bytes a
// file or tensor name holds.
#pragma once
#include <string>

namespace df11cli {

// s with every control character escaped: C0 and DEL as \n, \t, \r or \xNN,
// and the C1 controls (U+0080-U+009F, UTF-8 C2 80-C2 9F) as \xc2\xNN. A log
// reader that takes a line per error then gets one, and a name's escape
// sequences (ESC [, or the one-byte CSI U+009B) cannot drive the terminal.
// Other bytes, UTF-8 or not, pass unchanged.
std::string one_line(const std::string& s);

}  // namespace df11cli
