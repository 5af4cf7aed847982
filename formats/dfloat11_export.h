// `df11 export --format dfloat11` internals: which tensors form DFloat11
// compression units, and the pattern_dict that names them. Pure functions of
// the tensor names, dtypes and shapes (no data), so that tests can plan
// models of any size. The public entry point is export_dfloat11 in df11.h.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "df11.h"
#include "safetensors_header.h"

namespace df11 {

struct ExportTensor {
  std::string name;
  Dtype dtype = Dtype::BF16;
  std::vector<uint64_t> shape;
};

struct PlannedUnit {
  std::string module;           // "model.layers.0", "lm_head"
  std::string pattern;          // its pattern_dict key
  std::vector<size_t> weights;  // indices into the tensor list, in stream order
  std::vector<size_t> extras;   // other tensors under module + "." (norms, biases): same file
  uint64_t elements = 0;
  std::string file;             // "model_layers_0.safetensors"
};

struct ExportPlan {
  std::vector<PlannedUnit> units;
  std::vector<std::pair<std::string, std::vector<std::string>>> pattern_dict;
  std::vector<size_t> remainder;  // every other tensor, in order: "model.safetensors"
};

constexpr const char* kDf11RemainderFile = "model.safetensors";

// `tensors` in the model's index order. Units (issue 13):
//  * the 2-D BF16 ".weight" tensors of each transformer block (a module path
//    "<prefix>.N" whose last prefix component is "layers" or "h" or ends in
//    "blocks"), in index order; blocks of one prefix share a pattern
//    "<prefix>\.\d+" when they all list the same weights in the same order,
//    and otherwise get one pattern per distinct list, "<prefix>\.(?:0|2|...)";
//  * "lm_head" and "*embed_tokens" (2-D BF16, outside blocks) alone, unless
//    `tied` (then both stay uncompressed: DFloat11's loader would leave a tied
//    lm_head pointing at the deleted embedding weight).
// Everything else (norms, biases, 1-D or non-BF16 tensors) is stored as it is.
ExportPlan plan_dfloat11_units(const std::vector<ExportTensor>& tensors, bool tied);

// Python `re` pattern matching exactly `s` (every character other than
// letters, digits and '_' escaped).
std::string regex_escape(const std::string& s);

}  // namespace df11
