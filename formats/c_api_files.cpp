// C API (df11_c.h): library information, errors, files and CPU decoding,
// over the C++ Reader (df11.h) and the directory manifest (manifest.h).
#include <cstring>

#include "c_api_internal.h"
#include "parallel.h"
#include "file_io.h"
#include "input_entry.h"
#include "manifest.h"
#include "safetensors_header.h"  // quote_name

namespace df11::capi {

namespace {
thread_local std::string g_last_error;
// Set instead of g_last_error where that could not be written (fail_static).
thread_local const char* g_static_error = nullptr;
}

df11_status fail(Error e, const std::string& message) {
  g_last_error = one_line(message);  // the header promises one line; names may hold anything
  g_static_error = nullptr;
  return static_cast<df11_status>(e);
}

df11_status fail_static(Error e, const char* message) noexcept {
  g_static_error = message;
  return static_cast<df11_status>(e);
}

df11_status fail(Error e, const std::string& label, const std::string& what) {
  return fail(e, make_status(e, label, what).message);
}

df11_status fail(const Status& s) { return fail(s.code, s.message); }

std::string tensor_label(const df11_file& f, uint64_t i) {
  return f.file_of(i) + ": tensor '" + f.tensor(i).name + "'";
}

df11_status check_index(const df11_file* f, uint64_t i) {
  if (!f) return fail(Error::Usage, "df11", "null df11_file");
  if (i >= f->tensors.size())
    return fail(Error::Usage, f->path,
                "tensor index " + std::to_string(i) + " out of range (" + std::to_string(f->tensors.size()) +
                    " tensors)");
  return DF11_OK;
}

namespace {

// Reads the manifest and opens every .df11 shard it lists, in its order.
df11_status open_directory(const std::string& dir, df11_file* f) {
  Manifest m;
  if (Status s = read_manifest(dir, &m); !s.ok()) return fail(s);
  // A shard the manifest lost is not left out silently.
  if (Status s = check_manifest_coverage(dir, m, nullptr); !s.ok()) return fail(s);
  for (const ManifestEntry& e : m.files) {
    // Compressed safetensors files are stored under another name; the rest verbatim.
    if (e.stored_as == e.path) continue;
    // The rules of decompress: a stored file may be a link to a regular
    // file, but no folder on its way may be a link (FORMAT.md section 7).
    if (Status s = check_input_file(dir, e.stored_as); !s.ok()) return fail(s);
    std::unique_ptr<Reader> r;
    if (Status s = Reader::open(dir + "/" + e.stored_as, &r); !s.ok()) return fail(s);
    if (Status s = check_container(*r, e, dir + "/" + e.stored_as); !s.ok()) return fail(s);
    f->shards.push_back(e.stored_as);
    f->readers.push_back(std::move(r));
  }
  return DF11_OK;
}

}  // namespace

}  // namespace df11::capi

using namespace df11;
using namespace df11::capi;

extern "C" {

const char* df11_version(void) { return version_string(); }

int df11_c_api_version(void) { return DF11_C_API_VERSION; }

const char* df11_status_name(df11_status s) {
  return s < 0 ? "Unknown" : error_name(static_cast<Error>(s));
}

int df11_status_exit_code(df11_status s) {
  // No std::string here: this function has no exception guard.
  if (s < 0 || std::strcmp(df11_status_name(s), "Unknown") == 0) return 3;
  return exit_code(static_cast<Error>(s));
}

const char* df11_last_error(void) { return g_static_error ? g_static_error : g_last_error.c_str(); }

df11_status df11_open(const char* path, df11_file** out) {
  return guard("df11_open", [&]() -> df11_status {
    if (!out) return fail(Error::Usage, "df11_open", "null output pointer");
    *out = nullptr;
    if (!path || !*path) return fail(Error::Usage, "df11_open", "empty path");
    auto f = std::make_unique<df11_file>();
    f->path = path;
    bool is_dir = false;
    if (Status s = stat_input(path, &is_dir); !s.ok()) return fail(s);  // ELOOP, EACCES, ... named as they are
    if (is_dir) {
      if (const df11_status s = open_directory(path, f.get()); s != DF11_OK) return s;
    } else {
      std::unique_ptr<Reader> r;
      if (Status s = Reader::open(path, &r); !s.ok()) return fail(s);
      f->shards.emplace_back();
      f->readers.push_back(std::move(r));
    }
    // shards' strings are final now: entries may point at them.
    for (size_t k = 0; k < f->readers.size(); ++k) {
      const auto& ts = f->readers[k]->tensors();
      for (size_t i = 0; i < ts.size(); ++i) {
        // JSON allows "a\u0000x"; df11_tensor_info.name (a C string) would
        // end at the NUL, so that two such names read the same and neither
        // can be found. Refused here only: the file itself is valid, and the
        // df11 command (C++ strings throughout) restores it exactly.
        if (ts[i].name.find('\0') != std::string::npos)
          return fail(Error::TensorNameHasNul, f->readers[k]->path(),
                      "tensor " + quote_name(ts[i].name) +
                          " has a NUL byte in its name, which the C API's C strings cannot carry (the df11 "
                          "command reads and restores the file)");
        const auto [it, fresh] = f->by_name.emplace(ts[i].name, f->tensors.size());
        if (!fresh) {
          const std::string& other = *f->tensors[it->second].shard;
          return fail(Error::DirDuplicateTensor, path,
                      "tensor '" + ts[i].name + "' is in both '" + other + "' and '" + f->shards[k] + "'");
        }
        f->tensors.push_back({f->readers[k].get(), i, &f->shards[k]});
      }
    }
    *out = f.release();
    return DF11_OK;
  });
}

void df11_close(df11_file* f) { delete f; }

uint64_t df11_tensor_count(const df11_file* f) { return f ? f->tensors.size() : 0; }

df11_status df11_tensor_info_at(const df11_file* f, uint64_t index, df11_tensor_info* out) {
  return guard("df11_tensor_info_at", [&]() -> df11_status {
    if (const df11_status s = check_index(f, index); s != DF11_OK) return s;
    if (!out) return fail(Error::Usage, f->path, "null df11_tensor_info");
    const ReaderTensor& t = f->tensor(index);
    out->name = t.name.c_str();
    out->dtype = t.dtype.c_str();
    out->shard = f->tensors[index].shard->c_str();
    out->ndim = static_cast<uint32_t>(t.shape.size());
    out->shape = t.shape.data();
    out->encoding = t.encoding;
    out->original_bytes = t.orig_size;
    out->stored_bytes = t.payload_size;
    return DF11_OK;
  });
}

df11_status df11_find_tensor(const df11_file* f, const char* name, uint64_t* index) {
  return guard("df11_find_tensor", [&]() -> df11_status {
    if (!f) return fail(Error::Usage, "df11_find_tensor", "null df11_file");
    if (!name || !index) return fail(Error::Usage, f->path, "null name or index pointer");
    const auto it = f->by_name.find(name);
    if (it == f->by_name.end()) return fail(Error::Usage, f->path, std::string("no tensor named '") + name + "'");
    *index = it->second;
    return DF11_OK;
  });
}

df11_status df11_decode_host(const df11_file* f, uint64_t index, void* dst, uint64_t dst_bytes, unsigned threads) {
  return guard("df11_decode_host", [&]() -> df11_status {
    if (const df11_status s = check_index(f, index); s != DF11_OK) return s;
    const ReaderTensor& t = f->tensor(index);
    if (dst_bytes < t.orig_size)
      return fail(Error::Usage, tensor_label(*f, index),
                  "destination holds " + std::to_string(dst_bytes) + " bytes, the tensor needs " +
                      std::to_string(t.orig_size));
    if (!dst && t.orig_size) return fail(Error::Usage, tensor_label(*f, index), "null destination");
    const df11_file::Entry& e = f->tensors[index];
    // Reader's messages already name the file, the tensor and the rule.
    if (Status s = e.reader->decode_tensor(e.index, static_cast<uint8_t*>(dst), resolve_threads(threads)); !s.ok())
      return fail(s);
    return DF11_OK;
  });
}

}  // extern "C"
