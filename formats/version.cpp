#include "df11.h"

namespace df11 {
const char* version_string() noexcept { return DF11_VERSION; }
}  // namespace df11
