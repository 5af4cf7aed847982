// Checks a model directory's model.safetensors.index.json (docs/FORMAT.md section 7).
#pragma once
#include <string>

#include "df11.h"  // Status, Error

namespace df11 {

constexpr const char* kModelIndexName = "model.safetensors.index.json";

// Checks DIR/model.safetensors.index.json if present (absent: Ok). The index
// MUST be a readable regular file holding a UTF-8 JSON object without
// duplicate keys, whose "weight_map" is an object of strings (other members,
// such as "metadata", are not checked) [DirIndexInvalid]. Every value MUST be
// a plain file name: not empty, not absolute, without '/', '\\', ".." or NUL
// [DirIndexBadPath], naming a regular file (not a symlink) in DIR
// [DirIndexMissingShard]. Messages start with DIR/model.safetensors.index.json.
// Never throws.
Status check_model_index(const std::string& dir);

}  // namespace df11
