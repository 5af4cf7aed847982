// df11 error codes: one named error for each rule the readers enforce.
// Public header (part of the library API, included by df11.h).
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <system_error>

namespace df11 {

enum class Error : int {
  Ok = 0,

  // ---- usage / environment --------------------------------------------------
  Usage,                  // bad command-line arguments or API misuse
  Io,                     // open/read/write/rename failed (errno in detail)
  OutputExists,           // output path exists and overwrite was not allowed
  Interrupted,            // SIGINT / SIGTERM / SIGHUP arrived; partial output removed
  CudaUnavailable,        // GPU requested but no CUDA device / not built with CUDA
  CudaError,              // a CUDA runtime call failed

  // ---- safetensors input (one per validation rule) ---------------------------
  StTruncated,            // file shorter than the 8-byte header length
  StHeaderTooLarge,       // header length above 100,000,000 bytes
  StHeaderPastEnd,        // header length runs past the end of the file
  StHeaderNotUtf8,        // header bytes are not valid UTF-8
  StHeaderInvalidJson,    // header is not a JSON object
  StDuplicateName,        // two tensors share a name
  StUnknownDtype,         // dtype string not in the safetensors list
  StInvalidShape,         // shape missing, not an array, negative or non-integer
  StInvalidOffsets,       // data_offsets missing, not two non-negative integers
  StOffsetsReversed,      // data_offsets begin > end ("out of order")
  StSizeMismatch,         // product(shape) * dtype size != end - begin (or overflows)
  StOffsetsOverlap,       // two tensors' byte ranges overlap
  StOffsetsHole,          // bytes between tensors that no tensor owns
  StOffsetsOutOfBounds,   // a tensor runs past the end of the file
  StTrailingBytes,        // bytes after the last tensor
  StInvalidMetadata,      // __metadata__ is not an object of strings
  StInvalidTensorEntry,   // tensor entry not an object, or unknown keys in it

  // ---- model directories -----------------------------------------------------
  DirIndexInvalid,        // model.safetensors.index.json unreadable or malformed
  DirIndexMissingShard,   // index weight_map names a shard that does not exist
  DirIndexBadPath,        // index names an absolute path or one with '/' or '..'
  DirManifestInvalid,     // df11 manifest unreadable, malformed, or unsafe path
  DirUnsupportedEntry,    // a special file (device, FIFO, socket) in the input directory

  // ---- .df11 container -----------------------------------------------------
  Df11Truncated,          // file shorter than its header says
  Df11BadMagic,           // not a .df11 file
  Df11UnsupportedVersion, // format version this reader does not know
  Df11HeaderChecksum,     // XXH64 over header, embedded header and index differs
  Df11BadHeaderField,     // a fixed-header field breaks a rule (sizes, params, reserved)
  Df11BadIndex,           // tensor record breaks a rule (encoding, ranges, alignment)
  Df11NonzeroPadding,     // a padding byte that MUST be zero is not
  Df11BadCodeLengths,     // Huffman code lengths not a valid length-limited code
  Df11BadGaps,            // gap value out of range or inconsistent with the stream
  Df11BadBlockOffsets,    // block-output array not monotone / not ending at n
  Df11StreamCorrupt,      // exponent stream does not decode to the recorded counts
  Df11ZstdCorrupt,        // zstd frame fails to decode to the recorded size
  Df11TensorChecksum,     // decoded tensor's XXH64 differs from the record
  Df11FileChecksum,       // whole restored file's XXH64 differs from the header

  // ---- verify ----------------------------------------------------------------
  VerifyMismatch,         // decoded data differs from the --against original

  // ---- appended after 1.0: every value is part of the C ABI (append only) ----
  DirDuplicateTensor,     // two shards of a df11 directory hold a tensor of the same name
  OutOfMemory,            // a host allocation failed (C API: std::bad_alloc at the boundary)
  Internal,               // an unexpected exception reached the C API boundary (a bug)
  // Symlinks in an input directory (a Hugging Face cache snapshot is made of
  // links into ../../blobs/): a link to a regular file is read through; these
  // name the entry, never the target.
  DirLinkDangling,        // a symlink whose target does not exist (or a link loop)
  DirLinkToDirectory,     // a symlink to a directory (also as a component of a stored path)
  DirLinkNotRegular,      // a symlink to a device, FIFO or socket
  OutputIsLink,           // an output path is a symlink: writing never follows one, even with -f
  // export --format dfloat11 (issue 13)
  ExportConfigInvalid,    // IN/config.json missing, unreadable or not a JSON object
  ExportAlreadyDf11,      // IN is already a DFloat11 model (dfloat11_config or encoded_exponent tensors)
  ExportDuplicateTensor,  // one tensor name in two weight files of IN
  DirUnsupportedName,     // an entry's name is not UTF-8 or holds a backslash: a manifest could not record it
  // C API (df11_open): df11_tensor_info.name is a C string, so a name with a
  // NUL byte (valid JSON, "a\u0000x") would be cut short there and clash.
  TensorNameHasNul,       // a tensor name holds a NUL byte, which the C API cannot carry
  OutputNotRegular,       // the output path is a device, FIFO or socket: never written through or replaced
};

// The C ABI's values (formats/df11_c.h): a code once published keeps its number.
static_assert(static_cast<int>(Error::VerifyMismatch) == 43, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::Internal) == 46, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::OutputIsLink) == 50, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::ExportDuplicateTensor) == 53, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::DirUnsupportedName) == 54, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::TensorNameHasNul) == 55, "C ABI: error values are append-only");
static_assert(static_cast<int>(Error::OutputNotRegular) == 56, "C ABI: error values are append-only");

// Stable identifier, e.g. "StOffsetsOverlap" (used in messages and --json).
const char* error_name(Error e) noexcept;

// Process exit code documented in the README:
// 0 ok, 1 verification mismatch or corrupt data, 2 usage, 3 I/O / invalid input / unsupported.
int exit_code(Error e) noexcept;

// Thrown where the system refuses a new thread (std::thread's constructor
// failed with std::system_error: EAGAIN, no memory for its stack, a thread
// limit). It is a std::bad_alloc, a resource that ran out, so that it
// travels the way an allocation failure does: the helper that starts threads
// (codec/parallel.h) first stops and joins those it had started, unwinding
// releases the rest, Reader::decode_tensor returns it as OutOfMemory, the C
// API returns OutOfMemory and the CLI exits 3 with its message. Never
// std::terminate, never a thread left running.
class ThreadStartError : public std::bad_alloc {
 public:
  explicit ThreadStartError(const std::error_code& ec);
  // "cannot start a thread: Resource temporarily unavailable"
  const char* what() const noexcept override { return what_->c_str(); }
  std::error_code code() const noexcept { return ec_; }

 private:
  std::error_code ec_;
  std::shared_ptr<const std::string> what_;  // shared: copying an exception must not throw
};

}  // namespace df11
