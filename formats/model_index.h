// Checks a model directory's model.safetensors.index.json (docs/FORMAT.md section 7).
#pragma once
#include <string>
#include <vector>

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
// Never throws. With `tensors`, a caller that needs the weight_map's tensor
// names (export orders its units by them) gets them from this one read, in
// the index's order, on success (none without an index); on failure
// *tensors is left alone.
Status check_model_index(const std::string& dir, std::vector<std::string>* tensors = nullptr);

// The same checks for another index of the kind in DIR, DIR/NAME (a
// diffusers component's diffusion_pytorch_model.safetensors.index.json).
Status check_shard_index(const std::string& dir, const std::string& name);

// The same for the index of a df11 directory, DIR/NAME (NAME: where its
// manifest stores model.safetensors.index.json): every check but the shards'
// presence, as the shards are stored as .df11 files.
Status read_model_index(const std::string& dir, const std::string& name, std::vector<std::string>* tensors);

// The same checks for any index stored in a df11 directory, DIR/NAME, but for
// the shards' presence: gives the shard names its weight_map names, each
// once, in the order first named (decompress and verify check them against
// the manifest).
Status read_index_shards(const std::string& dir, const std::string& name, std::vector<std::string>* shards);

}  // namespace df11
