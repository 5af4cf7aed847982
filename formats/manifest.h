// df11-manifest.json of a compressed model directory (docs/FORMAT.md §7).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "df11.h"

namespace df11 {

constexpr const char* kManifestName = "df11-manifest.json";

struct ManifestEntry {
  std::string path;       // original relative path, '/' separated
  uint64_t size = 0;
  std::string sha256;     // lowercase hex of the original file
  std::string stored_as;  // relative path inside the df11 directory
  bool link = false;      // the input entry was a symlink to a regular file ("link": true; absent = false)
  // The .df11 container's original_xxh64 (16 lowercase hex digits in the
  // JSON), which ties the container to this entry, so decompress need not
  // hash the restored file again (none for copied files, and in manifests
  // written before the key).
  std::optional<uint64_t> original_xxh64;
};

// FORMAT.md §7: every reader of a df11 directory checks each container it
// opens against its entry, from the header, before decoding anything: Ok, or
// VerifyMismatch naming `path` ("not the manifest's file: ..."). Catches a
// shard replaced by another valid container, which its own checksums cannot.
// An entry without original_xxh64 (an older manifest) ties nothing.
Status check_container(const Reader& r, const ManifestEntry& e, const std::string& path);
// The same as a reason ("" when it matches), for verify's failure lines.
std::string container_mismatch(const Reader& r, const ManifestEntry& e);

struct Manifest {
  std::vector<ManifestEntry> files;       // sorted by path
  std::vector<std::string> directories;   // every subdirectory, so empty ones survive
};

// A relative path is safe when it has no empty, "." or ".." component, is not
// absolute, and has no backslash or NUL.
bool safe_relative_path(const std::string& p);

std::string manifest_to_json(const Manifest& m);
// Reads dir/df11-manifest.json (which may be a link to a regular file, as in
// the Hugging Face cache); Io "not a df11 directory" when there is none.
Status read_manifest(const std::string& dir, Manifest* m);
Status manifest_from_json(const std::string& text, const std::string& label, Manifest* out);

// A df11 directory holds what its manifest says it restores (FORMAT.md §7):
// every .df11 file in `dir` is an entry's stored file (one that is not, after
// an edit that dropped its entry, would be left out of the restored model
// without a word: VerifyMismatch), and every shard that a stored index names
// is an entry beside that index (else the restored index names a missing
// file: DirIndexMissingShard). Other files the manifest does not list, such
// as a model card or a .gitattributes that a model hub adds, are not df11's
// and are left alone. Each problem is one status naming the file in
// *problems (verify reports each); with problems null (decompress, export,
// the C API) the first problem is the return value. Otherwise the return
// value is an error that stops the check (a folder that cannot be listed).
Status check_manifest_coverage(const std::string& dir, const Manifest& m, std::vector<Status>* problems);

}  // namespace df11
