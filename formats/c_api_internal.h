// Internals of the C API (df11_c.h) shared by c_api_files.cpp and
// c_api_gpu.cpp: the df11_file object, the per-thread error message and the
// exception barrier every exported function goes through.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "df11.h"
#include "df11_c.h"

struct df11_file {
  struct Entry {
    const df11::Reader* reader = nullptr;
    size_t index = 0;            // in reader->tensors()
    const std::string* shard = nullptr;
  };
  std::string path;                                     // as given to df11_open
  std::vector<std::string> shards;                      // relative paths ("" for a file)
  std::vector<std::unique_ptr<df11::Reader>> readers;   // one per shard
  std::vector<Entry> tensors;                           // model order
  std::unordered_map<std::string, uint64_t> by_name;

  const df11::ReaderTensor& tensor(uint64_t i) const { return tensors[i].reader->tensors()[tensors[i].index]; }
  // The file a tensor lives in, for messages.
  const std::string& file_of(uint64_t i) const { return tensors[i].reader->path(); }
};

namespace df11::capi {

// Records `message` as this thread's last error and returns e's numeric value.
df11_status fail(Error e, const std::string& message);
// make_status's format: "LABEL: WHAT (Rule)".
df11_status fail(Error e, const std::string& label, const std::string& what);
df11_status fail(const Status& s);
// "PATH: tensor 'NAME'" for messages about tensor i of f.
std::string tensor_label(const df11_file& f, uint64_t i);
// Usage error unless f is non-null and i < its tensor count.
df11_status check_index(const df11_file* f, uint64_t i);

// The code alone, with a fixed message that needs no memory: for when even
// the message of an error could not be allocated.
df11_status fail_static(Error e, const char* message) noexcept;

// Runs body, turning every C++ exception into an error code: nothing may
// unwind through the C ABI, not even from a handler (recording a message
// allocates, and memory may be what ran out).
template <class F>
df11_status guard(const char* function, F&& body) noexcept {
  try {
    try {
      return body();
    } catch (const ThreadStartError& e) {  // a std::bad_alloc: the threads started before it are joined
      return fail(Error::OutOfMemory, function, e.what());
    } catch (const std::bad_alloc&) {
      return fail(Error::OutOfMemory, function, "out of host memory");
    } catch (const std::exception& e) {
      return fail(Error::Internal, function, std::string("unexpected exception: ") + e.what());
    } catch (...) {
      return fail(Error::Internal, function, "unexpected exception");
    }
  } catch (...) {
    return fail_static(Error::OutOfMemory, "df11: out of host memory (OutOfMemory)");
  }
}

}  // namespace df11::capi
