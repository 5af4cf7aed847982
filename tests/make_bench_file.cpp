// make_bench_file OUT.safetensors [--kind K] [--mib N] [--seed N] [--elements N]
//                 [--layers N] [--first-layer N] [--embed 0|1] [--lm-head 0|1] [-T N]
// make_bench_file --copy-bandwidth [-T N]
//   prints the memory-copy bandwidth (memcpy of 1 GiB per thread, 256 MiB
//   pieces, best of 5; GB/s of bytes copied, i.e. read once and written once)
//   on N threads (default all cores): the ceiling scripts/bench_cpu_cores.sh
//   compares df11 with.
// Synthetic BF16 safetensors files for the CPU benchmarks, written as they are
// generated (memory stays at a few tens of MB whatever the file size).
//   --kind matrices (default): about N MiB (default 1024) of 4096x4096 matrices
//          (normal values with per-row scales, codec/synthetic.h).
//   --kind llama3-8b: a Llama-3-8B-shaped shard: model.embed_tokens.weight
//          [128256, 4096] (unless --embed 0), --layers full layers (default 2:
//          q/o 4096x4096, k/v 1024x4096, gate/up 14336x4096, down 4096x14336,
//          two RMSNorm vectors) numbered from --first-layer, and lm_head.weight
//          [128256, 4096] with --lm-head 1; __metadata__ {"format":"pt"}.
//          Weights are Student-t (5 degrees of freedom, the heavy tails of
//          trained matrices) with a per-tensor std between 0.01 and 0.035.
//   --kind one-tensor: one BF16 tensor of --elements values (default 2^29,
//          1 GiB), shape [elements / 4096, 4096] when divisible, else [elements].
//   --kind moe: --layers Qwen3-MoE-shaped layers (128 experts of 3 MiB each).
//   --kind many: about --mib MiB of 1-D tensors of --elements values each.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "parallel.h"
#include "synthetic.h"

namespace {

struct Tensor {
  std::string name;
  std::vector<uint64_t> shape;
  double stddev = 0.02;
  bool norm = false;     // RMSNorm weight: values near 1
  bool student = true;   // Student-t values (llama kinds); else codec/synthetic.h
  uint64_t index = 0;    // matrices kind: seed offset, as earlier versions of this tool
  uint64_t elements() const {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return n;
  }
};

// Values [first, first + count) of tensor t, row-parallel, deterministic.
void generate(const Tensor& t, uint64_t seed, uint64_t first, uint64_t count, uint16_t* out, unsigned threads) {
  const uint64_t cols = t.shape.back();
  if (!t.student) {  // whole matrix at once (see main), seeded as before
    df11::synthetic_weights(out, count / cols, cols, seed + t.index, t.stddev, threads);
    return;
  }
  const uint64_t key = (seed * 0x100000001B3ull) ^ std::hash<std::string>()(t.name);
  // Norm weights sit around 1.0; everything else around 0.
  df11::student_t_weights(out, first / cols, count / cols, cols, key, t.norm ? 0.05 : t.stddev, t.norm ? 1.0 : 0.0,
                          threads);
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s OUT.safetensors [--kind matrices|llama3-8b|moe|many|one-tensor] [--mib N] [--seed N] "
               "[--elements N] [--layers N] [--first-layer N] [--embed 0|1] [--lm-head 0|1] [-T N]\n",
               argv0);
  std::exit(2);
}

}  // namespace

// memcpy bandwidth on `threads` threads, each with its own buffers (touched
// first, so page faults are not timed).
double copy_bandwidth(unsigned threads) {
  constexpr uint64_t kBytes = uint64_t{256} << 20;
  constexpr int kRounds = 4;  // 1 GiB per thread per timing
  std::vector<std::vector<uint8_t>> src(threads), dst(threads);
  df11::parallel_for(threads, threads, [&](uint64_t t) {
    src[t].assign(kBytes, static_cast<uint8_t>(t + 1));
    dst[t].assign(kBytes, 0);
  });
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    df11::parallel_for(threads, threads, [&](uint64_t t) {
      for (int r = 0; r < kRounds; ++r) std::memcpy(dst[t].data(), src[t].data(), kBytes);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(threads) * kRounds * kBytes / s / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  // An option where OUT belongs (e.g. --help) is not a file name: writing a
  // 1 GiB file called "--help" is never what was meant.
  if (argc < 2 || (argv[1][0] == '-' && std::strcmp(argv[1], "--copy-bandwidth") != 0)) usage(argv[0]);
  if (!std::strcmp(argv[1], "--copy-bandwidth")) {
    unsigned t = std::max(1u, std::thread::hardware_concurrency());
    if (argc == 4 && !std::strcmp(argv[2], "-T")) t = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    std::printf("%.2f\n", copy_bandwidth(std::max(1u, t)));
    return 0;
  }
  std::string kind = "matrices";
  uint64_t mib = 1024, seed = 7, elements = uint64_t{1} << 29, layers = 2, first_layer = 0, embed = 1, lm_head = 0;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--kind") kind = v;
    else if (a == "--mib") mib = std::strtoull(v, nullptr, 10);
    else if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
    else if (a == "--elements") elements = std::strtoull(v, nullptr, 10);
    else if (a == "--layers") layers = std::strtoull(v, nullptr, 10);
    else if (a == "--first-layer") first_layer = std::strtoull(v, nullptr, 10);
    else if (a == "--embed") embed = std::strtoull(v, nullptr, 10);
    else if (a == "--lm-head") lm_head = std::strtoull(v, nullptr, 10);
    else if (a == "-T") threads = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    else usage(argv[0]);
  }
  if ((argc - 2) % 2) usage(argv[0]);

  std::vector<Tensor> ts;
  if (kind == "matrices") {
    for (uint64_t m = 0; m < (mib + 31) / 32; ++m)  // 32 MiB per matrix
      ts.push_back({"layers." + std::to_string(m) + ".weight", {4096, 4096}, 0.02, false, false, m});
  } else if (kind == "llama3-8b") {
    // Per-tensor std spread over [0.01, 0.035] (embeddings smallest, as in Llama 3).
    if (embed) ts.push_back({"model.embed_tokens.weight", {128256, 4096}, 0.010});
    for (uint64_t l = first_layer; l < first_layer + layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      // Sorted by name, as the safetensors library writes them.
      ts.push_back({p + "input_layernorm.weight", {4096}, 0, true});
      ts.push_back({p + "mlp.down_proj.weight", {4096, 14336}, 0.014});
      ts.push_back({p + "mlp.gate_proj.weight", {14336, 4096}, 0.018});
      ts.push_back({p + "mlp.up_proj.weight", {14336, 4096}, 0.016});
      ts.push_back({p + "post_attention_layernorm.weight", {4096}, 0, true});
      ts.push_back({p + "self_attn.k_proj.weight", {1024, 4096}, 0.035});
      ts.push_back({p + "self_attn.o_proj.weight", {4096, 4096}, 0.012});
      ts.push_back({p + "self_attn.q_proj.weight", {4096, 4096}, 0.030});
      ts.push_back({p + "self_attn.v_proj.weight", {1024, 4096}, 0.011});
    }
    if (lm_head) ts.push_back({"lm_head.weight", {128256, 4096}, 0.013});
  } else if (kind == "moe") {
    // A Qwen3-30B-A3B-shaped block of --layers layers: 128 experts of
    // [768, 2048] gate/up and [2048, 768] down projections (3 MiB each: a
    // window and a half of the codec), a [128, 2048] router, attention and norms.
    for (uint64_t l = first_layer; l < first_layer + layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      ts.push_back({p + "input_layernorm.weight", {2048}, 0, true});
      for (int e = 0; e < 128; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        ts.push_back({x + "down_proj.weight", {2048, 768}, 0.018});
        ts.push_back({x + "gate_proj.weight", {768, 2048}, 0.020});
        ts.push_back({x + "up_proj.weight", {768, 2048}, 0.016});
      }
      ts.push_back({p + "mlp.gate.weight", {128, 2048}, 0.030});
      ts.push_back({p + "post_attention_layernorm.weight", {2048}, 0, true});
      ts.push_back({p + "self_attn.k_proj.weight", {512, 2048}, 0.035});
      ts.push_back({p + "self_attn.o_proj.weight", {2048, 4096}, 0.012});
      ts.push_back({p + "self_attn.q_proj.weight", {4096, 2048}, 0.030});
      ts.push_back({p + "self_attn.v_proj.weight", {512, 2048}, 0.011});
    }
  } else if (kind == "many") {
    // About --mib MiB of vectors of --elements weights each: the per-tensor
    // costs (quantization scales, norms, small heads; a black-box audit).
    const uint64_t count = std::max<uint64_t>(1, (mib << 20) / (2 * elements));
    for (uint64_t k = 0; k < count; ++k) ts.push_back({"t." + std::to_string(k) + ".weight", {elements}, 0.02});
  } else if (kind == "one-tensor") {
    std::vector<uint64_t> shape = elements % 4096 == 0 ? std::vector<uint64_t>{elements / 4096, 4096}
                                                       : std::vector<uint64_t>{elements};
    ts.push_back({"weight", shape, 0.02});
  } else {
    usage(argv[0]);
  }

  // Header first (built by hand so the key order is exactly the above).
  std::string header = R"({"__metadata__":{"format":"pt"})";
  uint64_t offset = 0;
  for (const Tensor& t : ts) {
    const uint64_t end = offset + 2 * t.elements();
    header += "," + nlohmann::json(t.name).dump() + R"(:{"dtype":"BF16","shape":)" + nlohmann::json(t.shape).dump() +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  while (header.size() % 8) header += ' ';

  FILE* f = std::fopen(argv[1], "wb");
  if (!f) {
    std::perror(argv[1]);
    return 1;
  }
  bool ok = true;
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
  ok &= std::fwrite(len, 1, 8, f) == 8;
  ok &= std::fwrite(header.data(), 1, header.size(), f) == header.size();
  std::vector<uint16_t> buf;
  for (const Tensor& t : ts) {
    const uint64_t n = t.elements(), cols = t.shape.back();
    // Pieces of whole rows, about 16 MiB each.
    const uint64_t piece = t.student ? std::max<uint64_t>(1, (uint64_t{8} << 20) / cols) * cols : n;
    buf.resize(std::min(n, piece));
    for (uint64_t first = 0; first < n && ok; first += piece) {
      const uint64_t count = std::min(piece, n - first);
      generate(t, seed, first, count, buf.data(), threads);
      ok &= std::fwrite(buf.data(), 2, count, f) == count;
    }
  }
  ok &= std::fclose(f) == 0;
  if (!ok) {
    std::perror(argv[1]);
    return 1;
  }
  return 0;
}
