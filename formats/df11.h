// df11 public API. The command-line tool uses only this header (and, for the
// GPU, cuda/df11_cuda.h). Format: docs/FORMAT.md.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bf16_codec.h"
#include "df11_errors.h"

namespace df11 {

constexpr uint32_t kFormatVersion = 2;
const char* version_string() noexcept;  // "1.0.0"

// Result of an operation: a code and a one-line message naming the file and
// the rule broken, e.g. "model.safetensors: tensor 'a' overlaps 'b' (StOffsetsOverlap)".
struct Status {
  Error code = Error::Ok;
  std::string message;
  bool ok() const { return code == Error::Ok; }
  static Status Ok() { return {}; }
};

struct Options {
  unsigned threads = 0;           // 0: all cores
  bool overwrite = false;         // -f
  bool verify_after = false;      // compress --verify: decode what was written before success
  std::string device = "auto";    // verify: auto | cpu | cuda | cuda:N | cuda:all (parse_device)
  // Progress in bytes of input processed; called from the calling thread.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// A --device value (Options::device). Every user of one (verify, a
// directory's cuda:all, the command line's checks) goes through parse_device,
// so that they all accept the same words.
struct DeviceChoice {
  enum class Kind { Auto, Cpu, Cuda, CudaIndex, CudaAll };
  Kind kind = Kind::Auto;
  int index = 0;  // the GPU one file uses: N for cuda:N, else 0
};

// The accepted values, as messages name them.
constexpr const char* kDeviceValues = "auto, cpu, cuda, cuda:N or cuda:all";

// auto | cpu | cuda | cuda:N | cuda:all, where N is written in decimal
// without sign or leading zeros (one spelling per GPU: "cuda:01" is refused)
// and fits an int. Anything else is Usage, "--device: expected auto, cpu,
// cuda, cuda:N or cuda:all, got 'TEXT' (Usage)", and leaves *out alone. Whether
// GPU N exists is not checked here (verify reports CudaUnavailable).
Status parse_device(const std::string& text, DeviceChoice* out);

struct TensorReport {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::string encoding;            // "bf16-huffman", "zstd", "raw"
  uint64_t original_bytes = 0;
  uint64_t stored_bytes = 0;       // payload bytes, sections and inner padding included
  double bits_per_weight = 0;      // stored bits / elements (BF16: vs 16)
  double exponent_entropy = 0;     // BF16 only: bits
  uint32_t longest_code = 0;       // BF16 only
};

struct FileReport {
  std::string path;                // relative path inside a directory, or the file path
  uint64_t original_bytes = 0;
  uint64_t stored_bytes = 0;
  std::vector<TensorReport> tensors;  // filled by info(); compress fills it too
  bool is_safetensors = true;      // false: copied verbatim (directory mode)
};

struct Report {
  std::vector<FileReport> files;
  uint64_t original_bytes = 0;
  uint64_t stored_bytes = 0;
  double seconds = 0;
};

// IN is a .safetensors file or a model directory. OUT: for a file, default is
// IN with ".df11" in place of ".safetensors"; for a directory, required.
// Output appears atomically (temp + rename); nothing is left on failure.
Status compress(const std::string& in, const std::string& out, const Options& opt, Report* report);

// IN is a .df11 file or a df11 directory (with df11-manifest.json).
Status decompress(const std::string& in, const std::string& out, const Options& opt, Report* report);

struct VerifyReport {
  std::vector<std::string> failures;  // one line per failing tensor or file
  uint64_t tensors_checked = 0;
  uint64_t files_checked = 0;
  std::string device;                 // "cpu" or "cuda:N (name)"
  uint64_t decoded_bytes = 0;         // BF16 bytes produced by the decoder
  double decode_seconds = 0;          // time inside the decoder only
};

// Decodes every tensor and checks every checksum; with `against`, compares
// with the original file or directory too. Returns VerifyMismatch (exit 1) if
// any check failed; the report names each failure.
Status verify(const std::string& in, const std::string& against, const Options& opt,
              VerifyReport* report);

// Per-tensor statistics of a .df11 file or df11 directory.
Status info(const std::string& in, const Options& opt, Report* report);

// Installs SIGINT/SIGTERM/SIGHUP handlers: running operations then stop at the
// next tensor, remove their temporary output and return Error::Interrupted.
void install_interrupt_handlers();
// Installs a SIGBUS handler for df11's own mappings: a file cut short by
// another process while df11 reads it then fails the operation with Io
// "file changed while being read" (its temporary output removed), instead of
// killing the process. Faults elsewhere keep the action installed before. For
// programs that own their signal handling, as the df11 command does; a host
// process may have its own. Idempotent.
void install_fault_handler();
// True once SIGINT, SIGTERM or SIGHUP has arrived (after install_interrupt_handlers),
// so that a caller's own loops (the CLI's pipe copies) stop and clean up too.
bool interrupted() noexcept;
// The first of those signals that arrived (SIGINT, SIGTERM or SIGHUP), 0 if
// none: a program that has cleaned up can end by it (the df11 command does),
// so that its caller sees it was interrupted (a shell loop then stops too).
int interrupt_signal() noexcept;

// s with every control character escaped: C0 and DEL as \n, \t, \r or \xNN,
// and the C1 controls (U+0080-U+009F, UTF-8 C2 80-C2 9F) as \xc2\xNN; other
// bytes, UTF-8 or not, unchanged. The command prints every message and name
// through it, and the C API's df11_last_error holds messages passed through
// it, so that a file or tensor name cannot break a message's one line, nor
// drive a terminal with its escape sequences. (Status::message itself holds
// the names as they are, for callers that compare them.)
std::string one_line(const std::string& s);

// Default output path for a single file: "x.safetensors" -> "x.df11".
std::string default_output_path(const std::string& in, bool compressing);

// The checks that compress and decompress make on a file output before any
// work (a link, a device, FIFO or socket, a directory, an existing file
// without overwrite, a folder that cannot take the output's temporary file),
// with the same errors. For a caller that must read a stream before calling
// them (the CLI spools a pipe), so that a run bound to fail fails before the
// stream is read. Creates and removes a temporary file beside `out`.
Status check_file_output(const std::string& out, bool overwrite);

// ---- Reader: a mapped, fully validated container ---------------------------
// Sections are 64-byte aligned views into the mapping, ready for upload.

struct ReaderTensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  uint32_t encoding = 0;       // 0 RAW, 1 ZSTD, 2 BF16_HUFFMAN
  uint64_t orig_offset = 0;
  uint64_t orig_size = 0;
  uint64_t orig_xxh64 = 0;
  uint64_t payload_xxh64 = 0;  // ZSTD: XXH64 of the stored frame
  const uint8_t* payload = nullptr;
  uint64_t payload_size = 0;
  Bf16View bf16;               // valid when encoding == 2
  uint64_t max_block_elems = 0;
};

class Reader {
 public:
  // Maps and validates header, index and every structural rule (no decoding).
  static Status open(const std::string& path, std::unique_ptr<Reader>* out);
  ~Reader();
  const std::string& path() const;
  uint64_t original_size() const;
  uint64_t original_xxh64() const;
  const std::vector<ReaderTensor>& tensors() const;  // in data-offset order
  // Decode tensor i on the CPU into `out` (orig_size bytes) and check its
  // XXH64. BF16 and RAW tensors are decoded straight into `out` (no copy).
  Status decode_tensor(size_t i, uint8_t* out, unsigned threads) const;
  // Streaming decode in bounded memory: tensor i is read with pread and
  // decoded in windows (about 1 MB of output each) into buffers reused across
  // tensors (each concurrent call has its own), on `threads` workers. `place` receives every window (its offset
  // in the tensor and its bytes) from the worker threads, in any order and
  // concurrently; `ordered`, if given, then receives the same windows in
  // order, one at a time. The XXH64 is known only at the end: on an error
  // everything handed out must be discarded.
  using PlacedSink = std::function<Status(uint64_t offset, const uint8_t* data, uint64_t size)>;
  using PieceSink = std::function<Status(const uint8_t* data, uint64_t size)>;
  Status decode_tensor_stream(size_t i, unsigned threads, const PlacedSink& place,
                              const PieceSink& ordered = nullptr) const;
  // How many threads the decodes above run for tensor i when offered
  // `threads` (0 counts as 1, as in the decodes: a caller resolves "all
  // cores" itself): 1 for RAW and ZSTD tensors and for BF16 ones of up to
  // about 1 MB, never more than offered. At 1, `place` is called from one
  // thread only, in order.
  unsigned decode_workers(size_t i, unsigned threads) const;
  // The original file's first 8 + json_size bytes.
  std::vector<uint8_t> original_header() const;
  // Io "file shrank while being read" when the file no longer holds tensor
  // i's payload (it was cut short after open). One fstat: call it before
  // reading a tensor's sections through the mapping (its Bf16View: GPU
  // images and uploads, statistics), where a missing page would be SIGBUS.
  // A file cut short between the check and the reads still is (a race
  // documented in docs/RELIABILITY.md); the decodes above need no check,
  // they read with pread.
  Status check_mapped(size_t i) const;
  // Drops tensor i's mapped pages from the process (they stay in the page
  // cache), after reading its sections through the mapping: memory then
  // stays flat over a whole file.
  void release_mapped(size_t i) const;
  // Io "file changed while being read" if another process wrote to the file
  // since open() (MappedFile::check_unchanged): check it after the last read.
  Status check_unchanged() const;

 private:
  // Both decodes: into `dest` (decode_tensor) or through `place`.
  Status decode(size_t i, unsigned threads, const PlacedSink* place, const PieceSink* ordered, uint8_t* dest) const;
  Reader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Export to DFloat11's Hugging Face layout (issue 13) --------------------
// `df11 export --format dfloat11`: writes a directory that the `dfloat11`
// package (0.2.0-0.5.0) loads with DFloat11Model.from_pretrained, bit for bit.
// Layout and rules: ../shared/interop/dfloat11-format.md; README "DFloat11 interop".

struct ExportOptions {
  std::string format = "dfloat11";  // the only format so far
  unsigned threads = 0;              // 0: all cores
  bool overwrite = false;            // -f
  // Progress in bytes of weights processed; called from the calling thread.
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Elements per unit the kernel takes (fewer than 2^31). Tests lower it to
  // exercise the rule without 4 GiB of weights; leave it alone otherwise.
  uint64_t max_unit_elements = (uint64_t{1} << 31) - 1;
};

// One compression unit: a transformer block's 2-D BF16 weights, or lm_head,
// or embed_tokens.
struct ExportUnit {
  std::string module;                // "model.layers.0"
  std::string pattern;               // its key in pattern_dict
  std::vector<std::string> weights;  // tensor names, in stream order
  std::string file;                  // output file holding it
  uint64_t elements = 0;
  bool compressed = false;
  // Stored uncompressed: the DFloat11 kernel limit it would break
  // ("ExponentSymbol", "SubTables", "SharedMemory", "Elements") and why.
  std::string limit;
  std::string detail;
  // Compressed, with the code changed to keep a limit (e.g. "SubTables: ...").
  std::vector<std::string> adjustments;
  uint64_t original_bytes = 0;       // BF16 bytes of its weights
  uint64_t stored_bytes = 0;         // bytes of its DF11 tensors (or the BF16 bytes)
  uint32_t n_luts = 0;
  uint32_t max_code_length = 0;
  uint64_t shared_mem_bytes = 0;     // what DFloat11's loader will request
};

struct ExportReport {
  std::vector<ExportUnit> units;
  // pattern_dict written to config.json, in order: regex -> attribute paths.
  std::vector<std::pair<std::string, std::vector<std::string>>> pattern_dict;
  std::vector<std::string> files_written;  // safetensors and config.json
  std::vector<std::string> files_copied;   // byte-identical
  std::vector<std::string> files_skipped;  // "path: reason" (e.g. the input's shard index)
  uint64_t original_bytes = 0;  // weight files of IN (original safetensors bytes)
  uint64_t stored_bytes = 0;    // safetensors files written
  double seconds = 0;
};

// IN: a Hugging Face model directory of safetensors, or a df11 directory
// (decoded on the way). OUT: required, written atomically (temp + rename);
// nothing is overwritten unless opt.overwrite.
Status export_dfloat11(const std::string& in, const std::string& out, const ExportOptions& opt,
                       ExportReport* report);

}  // namespace df11
