// Internal single-file operations shared by the file and directory front ends.
#pragma once
#include <string>

#include "df11.h"
#include "manifest.h"
#include "sha256.h"

namespace df11 {

class ThreadGrant;  // dir_tasks.h

// Each takes `grant`, a directory file's thread count asked before each
// tensor (it may grow while the file runs); without one, opt.threads holds
// throughout.

// Compress one safetensors file to `out` (atomic). If sha != nullptr, also
// hashes the input file with SHA-256; the container's original_xxh64 goes to
// *original_xxh64 when given (a directory's manifest records it).
Status compress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                    Sha256* sha, uint64_t* original_xxh64 = nullptr, ThreadGrant* grant = nullptr);

// Restore one container to `out` (atomic); the restored bytes are checked
// against original_xxh64, and hashed into `sha` when given. A container that
// is not what its manifest `entry` says is VerifyMismatch (check_container).
Status decompress_one(const std::string& in, const std::string& out, const Options& opt, FileReport* rep,
                      Sha256* sha, const ManifestEntry* entry = nullptr, ThreadGrant* grant = nullptr);
// Decode every tensor of one container and check every checksum; failures go
// to rep->failures and do not stop the walk. `label` prefixes failure lines.
// With against != "", compare with that original file too. If sha != nullptr,
// the restored file is hashed into it (for manifest checks). With `entry`,
// a container that is not the manifest's (size, original_xxh64) is a failure.
Status verify_one(const std::string& in, const std::string& against, const std::string& label, const Options& opt,
                  VerifyReport* rep, Sha256* sha, const ManifestEntry* entry = nullptr,
                  ThreadGrant* grant = nullptr);
Status info_one(const std::string& in, const Options& opt, FileReport* rep);

bool ends_with(const std::string& s, const std::string& suffix);

}  // namespace df11
