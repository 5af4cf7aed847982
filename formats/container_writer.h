// Writes one .df11 container from one mapped safetensors file.
#pragma once
#include "df11.h"
#include "file_io.h"
#include "safetensors_header.h"

namespace df11 {

class ThreadGrant;  // dir_tasks.h

// `file` is the whole validated safetensors file; `h` its parsed header.
// Streams tensor by tensor into `out` (peak memory ~ the largest tensor's
// encoded sections), then writes the index and the fixed header. The
// container's original_xxh64 goes to *original_xxh64 when it is given. Each
// BF16 tensor is coded with grant.threads() threads (opt.threads is not read).
Status write_container(const std::string& label, const MappedFile& file, const StHeader& h,
                       AtomicOutputFile& out, const Options& opt, FileReport* report, uint64_t* original_xxh64,
                       ThreadGrant& grant);

}  // namespace df11
