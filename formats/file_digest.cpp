#include "file_digest.h"

#include <cstdio>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace df11 {

FileDigest::FileDigest(const uint8_t* header, uint64_t header_size) : state_(XXH64_createState()) {
  XXH64_reset(static_cast<XXH64_state_t*>(state_), 0);
  XXH64_update(static_cast<XXH64_state_t*>(state_), header, header_size);
}

FileDigest::~FileDigest() { XXH64_freeState(static_cast<XXH64_state_t*>(state_)); }

void FileDigest::add_tensor(uint64_t tensor_xxh64) {
  for (int i = 0; i < 8; ++i) tensors_.push_back(static_cast<uint8_t>(tensor_xxh64 >> (8 * i)));
}

uint64_t FileDigest::digest() const {
  XXH64_state_t copy;
  XXH64_copyState(&copy, static_cast<const XXH64_state_t*>(state_));
  XXH64_update(&copy, tensors_.data(), tensors_.size());
  return XXH64_digest(&copy);
}

std::string digest_hex(uint64_t digest) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(digest));
  return b;
}

}  // namespace df11
