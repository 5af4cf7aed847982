#include "report_json.h"

namespace df11cli {

using nlohmann::ordered_json;

ordered_json status_json(const df11::Status& s) {
  ordered_json j;
  j["ok"] = s.ok();
  j["error"] = df11::error_name(s.code);
  j["exit_code"] = df11::exit_code(s.code);
  if (!s.ok()) j["message"] = s.message;
  return j;
}

ordered_json to_json(const df11::Report& r, bool with_tensors) {
  ordered_json j;
  j["original_bytes"] = r.original_bytes;
  j["stored_bytes"] = r.stored_bytes;
  j["ratio"] = r.original_bytes ? static_cast<double>(r.stored_bytes) / static_cast<double>(r.original_bytes) : 0.0;
  j["seconds"] = r.seconds;
  j["files"] = ordered_json::array();
  for (const auto& f : r.files) {
    ordered_json jf;
    jf["path"] = f.path;
    jf["kind"] = f.is_safetensors ? "safetensors" : "copied";
    jf["original_bytes"] = f.original_bytes;
    jf["stored_bytes"] = f.stored_bytes;
    if (!f.tensors.empty() || (with_tensors && f.is_safetensors)) {
      jf["tensors"] = ordered_json::array();
      for (const auto& t : f.tensors) {
        ordered_json jt;
        jt["name"] = t.name;
        jt["dtype"] = t.dtype;
        jt["shape"] = t.shape;
        jt["encoding"] = t.encoding;
        jt["original_bytes"] = t.original_bytes;
        jt["stored_bytes"] = t.stored_bytes;
        jt["bits_per_weight"] = t.bits_per_weight;
        if (t.encoding == "bf16-huffman") {
          jt["exponent_entropy"] = t.exponent_entropy;
          jt["longest_code"] = t.longest_code;
        }
        jf["tensors"].push_back(std::move(jt));
      }
    }
    j["files"].push_back(std::move(jf));
  }
  return j;
}

ordered_json to_json(const df11::VerifyReport& r) {
  ordered_json j;
  j["device"] = r.device;
  j["files_checked"] = r.files_checked;
  j["tensors_checked"] = r.tensors_checked;
  j["decoded_bytes"] = r.decoded_bytes;
  j["decode_seconds"] = r.decode_seconds;
  j["decode_gb_per_s"] = r.decode_seconds > 0 ? static_cast<double>(r.decoded_bytes) / r.decode_seconds / 1e9 : 0.0;
  j["failures"] = r.failures;
  return j;
}

}  // namespace df11cli
