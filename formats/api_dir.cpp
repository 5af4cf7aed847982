// Public entry points: dispatch between single files and model directories.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "dir_tasks.h"
#include "file_digest.h"
#include "file_io.h"
#include "gpu_verify.h"
#include "input_entry.h"
#include "manifest.h"
#include "model_index.h"
#include "atomic_output_dir.h"
#include "ops.h"
#include "parallel.h"

namespace df11 {

namespace fs = std::filesystem;

namespace {



// An entry refused by its kind (a link that does not resolve to a regular
// file, a special file): an error of the run, not a failure of one file.
bool is_refused_entry(Error e) {
  return e == Error::DirLinkDangling || e == Error::DirLinkToDirectory || e == Error::DirLinkNotRegular ||
         e == Error::DirUnsupportedEntry;
}



std::string stored_name(const std::string& rel) {
  return ends_with(rel, ".safetensors") ? rel.substr(0, rel.size() - 12) + ".df11" : rel;
}

Status compress_dir(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  std::vector<std::string> files, dirs;
  std::set<std::string> links;
  Status s = scan_dir(in, &files, &dirs, &links);
  if (!s.ok()) return s;
  // A stored name may not be taken twice, by two files (a.safetensors and
  // a.df11) or by a file and a directory (a.safetensors and a folder a.df11).
  std::set<std::string> outputs(dirs.begin(), dirs.end());
  // A temporary of a df11 run that was killed (SIGKILL leaves it: an output
  // written into the model's own folder) would be packed as part of the model.
  for (const auto* list : {&dirs, &files})
    for (const auto& rel : *list)
      if (is_df11_temporary(fs::path(rel).filename().string()))
        return make_status(Error::DirUnsupportedEntry, in + "/" + rel,
                           "a temporary left by an interrupted df11 run, not part of the model (remove it)");
  for (const auto& rel : files) {
    if (rel == kManifestName) return make_status(Error::DirUnsupportedEntry, in, std::string("input already contains ") + kManifestName);
    if (ends_with(rel, ".safetensors.index.json")) {
      // Every index of shards, whatever its stem: model.*, and diffusers'
      // diffusion_pytorch_model.* in a component's folder.
      const std::string sub = fs::path(rel).has_parent_path() ? in + "/" + fs::path(rel).parent_path().string() : in;
      s = check_shard_index(sub, fs::path(rel).filename().string());
      if (!s.ok()) return s;
    }
    if (!outputs.insert(stored_name(rel)).second)
      return make_status(Error::DirUnsupportedEntry, in + "/" + rel,
                         "stored as '" + stored_name(rel) + "', which another input entry already is");
  }
  AtomicOutputDir od;
  s = od.open(out, opt.overwrite);
  if (!s.ok()) return s;
  od.keep_modes_from(in);
  if (s = od.check_replaceable_early(outputs); !s.ok()) return s;
  Manifest m;
  m.directories = dirs;
  for (const auto& d : dirs)
    if (s = od.make_dir(d); !s.ok()) return s;
  // Sizes for progress and scheduling; a file may vanish meanwhile: reported
  // when its task runs.
  std::vector<uint64_t> sizes(files.size(), 0);
  for (size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    const uint64_t size = fs::file_size(in + "/" + files[i], ec);
    if (!ec) sizes[i] = size;
  }
  // Each file's entry and report go to its slot: the manifest and the report
  // keep the sorted order whichever file finishes first.
  m.files.resize(files.size());
  std::vector<FileReport> reports(files.size());
  s = run_file_tasks(sizes, opt, [&](size_t i, const Options& o, ThreadGrant& grant) -> Status {
    const std::string& rel = files[i];
    if (interrupted()) return interrupted_status(in);
    const std::string src = in + "/" + rel, dst = od.temp() + "/" + stored_name(rel);
    std::error_code ec;
    const uint64_t src_size = fs::file_size(src, ec);
    if (ec) return make_status(Error::Io, src, "cannot stat: " + ec.message());
    ManifestEntry e{rel, src_size, "", stored_name(rel), links.count(rel) > 0, std::nullopt};
    FileReport& fr = reports[i];
    fr.path = rel;
    if (ends_with(rel, ".safetensors")) {
      Sha256 sha;
      uint64_t original_xxh64 = 0;
      Status r = compress_one(src, dst, o, &fr, &sha, &original_xxh64, &grant);
      if (!r.ok()) return r;
      e.sha256 = to_hex(sha.digest());
      e.original_xxh64 = original_xxh64;
      e.size = fr.original_bytes;  // the size of what was read, not of the stat above
    } else {
      Status r = copy_file_atomic(src, dst, false, &e.sha256, &e.size);
      if (!r.ok()) return r;
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    m.files[i] = std::move(e);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (report)
    for (auto& fr : reports) report->files.push_back(std::move(fr));
  {
    AtomicOutputFile mf;
    const std::string text = manifest_to_json(m);
    s = mf.open(od.temp() + "/" + kManifestName, false);
    if (s.ok()) s = mf.write(text.data(), text.size());
    if (s.ok()) s = mf.commit();
    if (!s.ok()) return s;
  }
  return od.commit();
}

Status decompress_dir(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  if (s = check_manifest_coverage(in, m, nullptr); !s.ok()) return s;
  AtomicOutputDir od;
  s = od.open(out, opt.overwrite);
  if (!s.ok()) return s;
  od.keep_modes_from(in);
  {
    std::vector<std::string> will_write = m.directories;
    for (const auto& e : m.files) will_write.push_back(e.path);
    if (s = od.check_replaceable_early(will_write); !s.ok()) return s;
  }
  for (const auto& d : m.directories)
    if (s = od.make_dir(d); !s.ok()) return s;
  // Parents are made here, before any file runs (the tasks may run at once).
  std::vector<uint64_t> sizes;
  for (const auto& e : m.files) {
    if (s = od.make_dir(fs::path(e.path).parent_path().generic_string()); !s.ok()) return s;
    sizes.push_back(e.size);
  }
  std::vector<FileReport> reports(m.files.size());
  s = run_file_tasks(sizes, opt, [&](size_t i, const Options& o, ThreadGrant& grant) -> Status {
    const ManifestEntry& e = m.files[i];
    if (interrupted()) return interrupted_status(in);
    const std::string src = in + "/" + e.stored_as, dst = od.temp() + "/" + e.path;
    // Stored files may be links (a df11 model downloaded into the Hugging
    // Face cache); the restored files are always regular files.
    Status r = check_input_file(in, e.stored_as);
    if (!r.ok()) return r;
    FileReport& fr = reports[i];
    fr.path = e.path;
    std::string hex;
    if (e.stored_as != e.path) {
      // A manifest that ties the container to the entry (original_xxh64)
      // makes a second hash of the restored bytes redundant: the container's
      // own checksums prove them identical to the bytes it was made from, as
      // zstd -d trusts its content checksum. The SHA-256 is then left to
      // `verify`; it was the one serial stream per file (1.1 GB/s), which
      // bounded a directory's decompress at any -T. Older manifests are
      // checked by SHA-256 as before.
      const bool tied = e.original_xxh64.has_value();
      Sha256 sha;
      r = decompress_one(src, dst, o, &fr, tied ? nullptr : &sha, &e, &grant);
      if (!r.ok()) return r;
      if (tied) return Status::Ok();
      hex = to_hex(sha.digest());
    } else {
      std::error_code ec;
      const uint64_t size = fs::file_size(src, ec);
      if (!ec && size != e.size)  // checked before any work; a failed stat is copy_file_atomic's to report
        return make_status(Error::VerifyMismatch, src, "stored '" + e.path + "' has " + std::to_string(size) +
                                                           " bytes, manifest says " + std::to_string(e.size));
      r = copy_file_atomic(src, dst, false, &hex);
      if (!r.ok()) return r;
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    if (hex != e.sha256)
      return make_status(Error::VerifyMismatch, src, "restored '" + e.path + "' has SHA-256 " + hex + ", manifest says " + e.sha256);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (report)
    for (auto& fr : reports) report->files.push_back(std::move(fr));
  return od.commit();
}

// verify --against ORIG of a directory: ORIG holds exactly the manifest's
// files and directories. Each file's content is compared by its own check;
// this adds what is in ORIG but not in the manifest (a shard or config the
// compressed copy lacks), which no per-file check can see.
Status compare_entries(const Manifest& m, const std::string& against, std::vector<std::string>* failures) {
  std::vector<std::string> files, dirs;
  std::set<std::string> links;
  Status s = scan_dir(against, &files, &dirs, &links);
  if (!s.ok()) return s;
  std::set<std::string> listed(m.directories.begin(), m.directories.end());
  for (const auto& e : m.files) listed.insert(e.path);
  for (const auto* names : {&files, &dirs})
    for (const auto& rel : *names)
      if (!listed.count(rel)) failures->push_back(rel + ": in " + against + " but not in the df11 directory");
  return Status::Ok();
}

Status verify_dir(const std::string& in, const std::string& against, const Options& opt, VerifyReport* rep) {
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  std::error_code ec;
  if (!against.empty() && !fs::is_directory(against, ec))
    return make_status(Error::Usage, against, "a df11 directory is checked --against a model directory, not a file");
  // Refused here, once, rather than by every file's verify as a failure.
  DeviceChoice device;
  if (s = parse_device(opt.device, &device); !s.ok()) return s;
  std::vector<Status> problems;
  if (s = check_manifest_coverage(in, m, &problems); !s.ok()) return s;
  for (const Status& p : problems) rep->failures.push_back(p.message);
  // Each file checks into a report of its own; they are merged in manifest
  // order. A returned error (interrupted, a refused link) ends the run as it
  // did one file after another: files after it add nothing.
  const size_t n = m.files.size();
  std::vector<VerifyReport> reps(n);
  std::vector<Status> hard(n);
  std::vector<std::string> ran_on(n);  // the device each file's task was given
  auto task = [&](size_t i, const Options& o, ThreadGrant& grant) -> Status {
    const ManifestEntry& e = m.files[i];
    VerifyReport& r = reps[i];
    ran_on[i] = o.device;
    if (interrupted()) return hard[i] = interrupted_status(in);
    const std::string src = in + "/" + e.stored_as;
    const std::string orig = against.empty() ? "" : against + "/" + e.path;
    Status st = check_input_file(in, e.stored_as);
    if (!st.ok() && is_refused_entry(st.code)) return hard[i] = st;  // refused input; a missing file is a failure below
    std::string hex;
    if (e.stored_as != e.path) {
      Sha256 sha;
      st = verify_one(src, orig, e.path, o, &r, &sha, &e, &grant);
      // Resources running out (a decoding thread the system refused) say
      // nothing of the file: the run ends with that error, not a failure.
      if (st.code == Error::OutOfMemory) return hard[i] = st;
      if (!st.ok()) {
        r.failures.push_back(e.path + ": " + st.message);
        ++r.files_checked;
        return Status::Ok();
      }
      if (!r.failures.empty()) return Status::Ok();
      hex = to_hex(sha.digest());
    } else {
      st = hash_file(src, &hex);
      if (!st.ok()) {
        r.failures.push_back(e.path + ": " + st.message);
        return Status::Ok();
      }
      ++r.files_checked;
      std::error_code ec;
      if (fs::file_size(src, ec) != e.size)
        r.failures.push_back(e.path + ": size differs from the manifest's " + std::to_string(e.size) + " bytes");
      if (!orig.empty()) {
        std::string ohex;
        st = hash_file(orig, &ohex);
        if (!st.ok() || ohex != e.sha256) r.failures.push_back(e.path + ": differs from " + orig);
      }
    }
    if (hex != e.sha256) r.failures.push_back(e.path + ": SHA-256 differs from the manifest");
    return Status::Ok();
  };
  // Files run at once on the CPU, and with cuda:all one per GPU at a time;
  // otherwise a GPU decodes one file at a time.
  std::vector<std::string> devices;
  if (device.kind == DeviceChoice::Kind::CudaAll) {
    const int count = GpuVerifier::device_count();  // at least 1: verify() required it
    for (int d = 0; d < count; ++d) devices.push_back("cuda:" + std::to_string(d));
  }
  bool cpu_only = false;
  if (devices.empty()) {
    // A GPU asked for and absent (cuda, cuda:N) is refused once, as for one
    // file and for cuda:all, rather than reported as a failure of every file.
    GpuVerifier probe;
    VerifyReport scratch;
    if (s = probe.init(opt.device, &scratch); !s.ok()) return s;
    cpu_only = !probe.active();
  }
  std::vector<bool> ran(n, false);
  std::vector<uint64_t> sizes;
  for (const auto& e : m.files) sizes.push_back(e.size);
  if (!devices.empty()) {
    s = run_file_tasks_on(devices, sizes, opt, task, &ran);
  } else if (cpu_only) {
    s = run_file_tasks(sizes, opt, task, &ran);
  } else {
    for (size_t i = 0; i < n && s.ok(); ++i) {
      ran[i] = true;
      ThreadGrant grant(resolve_threads(opt.threads));
      s = task(i, opt, grant);
    }
  }
  if (s.ok() && !against.empty()) s = compare_entries(m, against, &rep->failures);
  for (size_t i = 0; i < n && ran[i] && hard[i].ok(); ++i) {
    VerifyReport& r = reps[i];
    rep->failures.insert(rep->failures.end(), r.failures.begin(), r.failures.end());
    rep->tensors_checked += r.tensors_checked;
    rep->files_checked += r.files_checked;
    rep->decoded_bytes += r.decoded_bytes;
    rep->decode_seconds += r.decode_seconds;
    if (!r.device.empty() && devices.empty()) rep->device = r.device;
  }
  // cuda:all names every GPU that decoded a file, in index order: a file's
  // report names its GPU once the decoder is set up on it (not for a file
  // stored verbatim, nor one that failed before).
  for (const std::string& d : devices) {
    for (size_t i = 0; i < n; ++i) {
      if (ran_on[i] == d && !reps[i].device.empty()) {
        rep->device += (rep->device.empty() ? "" : ", ") + reps[i].device;
        break;
      }
    }
  }
  return s;
}

}  // namespace

namespace {

using FileOp = Status (*)(const std::string&, const std::string&, const Options&, FileReport*);
using DirOp = Status (*)(const std::string&, const std::string&, const Options&, Report*);

// Shared front end of compress and decompress: default output, file or
// directory, and the report's totals.
Status run_op(const std::string& in, const std::string& out_arg, bool compressing, const Options& opt,
              Report* report, FileOp file_op, DirOp dir_op) {
  const auto t0 = std::chrono::steady_clock::now();
  bool is_dir = false;
  if (Status s = stat_input(in, &is_dir); !s.ok()) return s;
  const std::string out = out_arg.empty() ? default_output_path(in, compressing) : out_arg;
  Status s = refuse_output_over_input(in, out);
  if (!s.ok()) return s;
  // Out of memory (bad_alloc, a refused thread) is a status naming the input.
  s = out_of_memory_as_status(in, [&] {
    if (is_dir) return AtomicOutputDir::named_for_output(dir_op(in, out, opt, report), out);
    FileReport fr;
    fr.path = in;
    const Status fs = file_op(in, out, opt, &fr);
    if (report && fs.ok()) report->files.push_back(std::move(fr));
    return fs;
  });
  if (report) {
    for (const auto& f : report->files) {
      report->original_bytes += f.original_bytes;
      report->stored_bytes += f.stored_bytes;
    }
    report->seconds = seconds_since(t0);
  }
  return s;
}

}  // namespace

Status compress(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  return run_op(
      in, out, true, opt, report,
      [](const std::string& i, const std::string& o, const Options& p, FileReport* r) {
        return compress_one(i, o, p, r, nullptr);
      },
      compress_dir);
}

Status decompress(const std::string& in, const std::string& out, const Options& opt, Report* report) {
  return run_op(
      in, out, false, opt, report,
      [](const std::string& i, const std::string& o, const Options& p, FileReport* r) {
        return decompress_one(i, o, p, r, nullptr);
      },
      decompress_dir);
}

namespace {

Status verify_any(const std::string& in, const std::string& against, const Options& opt, VerifyReport* rep) {
  // A GPU asked for and absent is the one error, before any file is looked
  // at (a missing or damaged input, a directory's stray file, come after).
  if (Status s = GpuVerifier::require(opt.device); !s.ok()) return s;
  bool is_dir = false;
  if (Status s = stat_input(in, &is_dir); !s.ok()) return s;
  bool against_dir = false;
  if (!against.empty())
    if (Status s = stat_input(against, &against_dir); !s.ok()) return s;
  if (!is_dir && against_dir)
    return make_status(Error::Usage, against, "a .df11 file is checked --against a .safetensors file, not a directory");
  Status s = is_dir ? verify_dir(in, against, opt, rep) : verify_one(in, against, in, opt, rep, nullptr);
  if (!s.ok()) return s;
  if (!rep->failures.empty())
    return make_status(Error::VerifyMismatch, in, std::to_string(rep->failures.size()) + " check(s) failed");
  return Status::Ok();
}

Status info_any(const std::string& in, const Options& opt, Report* report) {
  bool is_dir = false;
  if (Status s = stat_input(in, &is_dir); !s.ok()) return s;
  if (!is_dir) {
    FileReport fr;
    fr.path = in;
    Status s = info_one(in, opt, &fr);
    if (!s.ok()) return s;
    report->original_bytes += fr.original_bytes;
    report->stored_bytes += fr.stored_bytes;
    report->files.push_back(std::move(fr));
    return Status::Ok();
  }
  Manifest m;
  Status s = read_manifest(in, &m);
  if (!s.ok()) return s;
  for (const auto& e : m.files) {
    FileReport fr;
    fr.path = e.path;
    s = check_input_file(in, e.stored_as);
    if (!s.ok() && is_refused_entry(s.code)) return s;
    if (e.stored_as != e.path) {
      s = info_one(in + "/" + e.stored_as, opt, &fr);
      if (!s.ok()) return s;
      fr.path = e.path;
    } else {
      fr.is_safetensors = false;
      fr.original_bytes = fr.stored_bytes = e.size;
    }
    report->original_bytes += fr.original_bytes;
    report->stored_bytes += fr.stored_bytes;
    report->files.push_back(std::move(fr));
  }
  return Status::Ok();
}

}  // namespace

Status verify(const std::string& in, const std::string& against, const Options& opt, VerifyReport* rep) {
  return out_of_memory_as_status(in, [&] { return verify_any(in, against, opt, rep); });
}

Status info(const std::string& in, const Options& opt, Report* report) {
  return out_of_memory_as_status(in, [&] { return info_any(in, opt, report); });
}

}  // namespace df11
