// What df11 may do at an output path: write a regular file or a directory
// there, through a hidden temporary beside it, and nothing else. A device,
// FIFO or socket at the path is refused (OutputNotRegular), with -f too; an
// output name of up to 255 bytes, the file system's limit, works, though the
// temporary's name adds 15 bytes to it. (Links: hf_cache_test.cpp.)
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "df11.h"
#include "atomic_output_dir.h"
#include "file_io.h"
#include "sample_model.h"
#include "test_options.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace df11;

namespace {

// A listening-less UNIX socket bound at `path` (the node stays after close).
bool make_socket_node(const std::string& path) {
  sockaddr_un a{};
  if (path.size() >= sizeof(a.sun_path)) return false;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

fs::file_type type_of(const std::string& path) { return fs::symlink_status(path).type(); }

}  // namespace

TEST_CASE("output path: a FIFO or socket is OutputNotRegular, with overwrite too, and stays", "[output]") {
  df11test::TempDir t;
  const std::string model = t.path + "/model", shard = model + "/model-00001-of-00002.safetensors";
  df11test::make_sample_model(model, df11test::tiny_sample());
  REQUIRE(compress(shard, t.path + "/s.df11", df11test::cpu_options(2), nullptr).ok());
  REQUIRE(compress(model, t.path + "/m.df11", df11test::cpu_options(2), nullptr).ok());
  // Short names: a socket's path must fit in sun_path (108 bytes).
  df11test::TempDir nodes("/tmp");
  const std::string node = nodes.path + "/n";
  fs::file_type kind = fs::file_type::none;
  SECTION("FIFO") {
    REQUIRE(::mkfifo(node.c_str(), 0600) == 0);
    kind = fs::file_type::fifo;
  }
  SECTION("socket") {
    REQUIRE(make_socket_node(node));
    kind = fs::file_type::socket;
  }
  SECTION("character device (a copy of /dev/null)") {
    if (::mknod(node.c_str(), S_IFCHR | 0600, makedev(1, 3)) != 0) {
      WARN("skipped: mknod is not allowed here (" << std::strerror(errno) << ")");
      return;
    }
    kind = fs::file_type::character;
  }
  for (const bool overwrite : {false, true}) {
    Options o = df11test::cpu_options(2);
    o.overwrite = overwrite;
    INFO("overwrite " << overwrite);
    const Status results[] = {
        compress(shard, node, o, nullptr),  // file
        decompress(t.path + "/s.df11", node, o, nullptr),
        compress(model, node, o, nullptr),  // directory
        decompress(t.path + "/m.df11", node, o, nullptr),
    };
    for (const Status& s : results) {
      INFO(s.message);
      CHECK(s.code == Error::OutputNotRegular);
      CHECK(exit_code(s.code) == 3);
      CHECK(s.message.find(node + ": output is a") == 0);
    }
  }
  CHECK(type_of(node) == kind);
  CHECK(df11test::temporaries_in(nodes.path).empty());
}

TEST_CASE("output path: the CLI refuses a FIFO with -f, and /dev/null, on one line", "[output][cli]") {
  df11test::TempDir t;
  df11test::make_sample_model(t.path + "/model", df11test::tiny_sample());
  REQUIRE(::mkfifo((t.path + "/fifo").c_str(), 0600) == 0);
  df11test::CliRun r = df11test::run_df11("compress -f model/model-00001-of-00002.safetensors -o fifo", t.path);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err == "df11: fifo: output is a FIFO; df11 writes regular files and never replaces another kind "
                 "(use -o - for a pipe, verify to check without writing) (OutputNotRegular)\n");
  CHECK(type_of(t.path + "/fifo") == fs::file_type::fifo);
  // Without -f, so that a regression cannot touch the machine's /dev/null
  // (with -f, as root, it would have been replaced by a file).
  r = df11test::run_df11("compress model/model-00001-of-00002.safetensors -o /dev/null", t.path);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("df11: /dev/null: output is a device;") == 0);
  CHECK(type_of("/dev/null") == fs::file_type::character);
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("output path: names of up to 255 bytes work, for files and inside directories", "[output]") {
  df11test::TempDir t;
  const std::string model = t.path + "/model";
  df11test::make_sample_model(model, df11test::tiny_sample());
  const std::string shard = model + "/model-00001-of-00002.safetensors";
  const Options o = df11test::cpu_options(2);
  // 255 bytes: the longest name; 241 bytes: the shortest whose temporary
  // (".NAME.df11tmp-XXXXXX") would pass 255 bytes uncut.
  for (const size_t len : {size_t{241}, size_t{255}}) {
    INFO("name length " << len);
    const std::string packed = t.path + "/" + std::string(len - 5, 'p') + ".df11";
    const std::string back = t.path + "/" + std::string(len - 12, 'b') + ".safetensors";
    Status s = compress(shard, packed, o, nullptr);
    INFO(s.message);
    REQUIRE(s.ok());
    s = decompress(packed, back, o, nullptr);
    REQUIRE(s.ok());
    CHECK(df11test::read_file(back) == df11test::read_file(shard));
    // A directory output of that length, holding a side file of that length.
    const std::string dir_in = t.path + "/in" + std::to_string(len);
    fs::copy(model, dir_in, fs::copy_options::recursive);
    df11test::write_file(dir_in + "/" + std::string(len - 5, 'n') + ".json", {'{', '}'});
    const std::string dir_out = t.path + "/" + std::string(len, 'd');
    s = compress(dir_in, dir_out, o, nullptr);
    REQUIRE(s.ok());
    const std::string dir_back = t.path + "/" + std::string(len, 'r');
    s = decompress(dir_out, dir_back, o, nullptr);
    REQUIRE(s.ok());
    CHECK(df11test::read_file(dir_back + "/" + std::string(len - 5, 'n') + ".json") == std::vector<uint8_t>{'{', '}'});
    CHECK(df11test::read_file(dir_back + "/model-00001-of-00002.safetensors") == df11test::read_file(shard));
  }
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("output path: a file and a folder that a directory compress would store under one name are refused first",
          "[output]") {
  // a.safetensors is stored as a.df11, which the folder a.df11 already is:
  // refused before anything is written, naming the input entry (was: a late
  // "output is a directory" naming the output).
  df11test::TempDir t;
  const std::string in = t.path + "/in";
  df11test::make_sample_model(in, df11test::tiny_sample());
  fs::create_directories(in + "/model-00001-of-00002.df11");
  const Status s = compress(in, t.path + "/out", df11test::cpu_options(2), nullptr);
  INFO(s.message);
  CHECK(s.code == Error::DirUnsupportedEntry);
  CHECK(s.message.find(in + "/model-00001-of-00002.safetensors: stored as 'model-00001-of-00002.df11'") == 0);
  CHECK_FALSE(fs::exists(t.path + "/out"));
  CHECK(df11test::temporaries_in(t.path).empty());
}

TEST_CASE("output path: a temporary left by a killed df11 run inside the input is refused, not packed", "[output]") {
  // A run killed with SIGKILL cannot remove its temporary; with its output in
  // the model's folder (compress mdl/x.safetensors -o mdl/x.df11), the next
  // compress of that folder packed the leftover as part of the model (a
  // black-box audit of concurrent runs found it).
  CHECK(is_df11_temporary(temp_name_prefix("model.df11") + "Ab12Cd"));
  CHECK(is_df11_temporary(temp_name_prefix("out") + "zZ09aa.old"));
  CHECK(is_df11_temporary(temp_name_prefix(std::string(300, 'n')) + "abcdef"));
  for (const char* other : {".model.df11tmp-abc", "model.df11.df11tmp-abcdef", ".m.df11tmp-abc!ef", ".df11tmp-abcdef",
                            ".m.df11tmp-abcdefg", "tokenizer.json", ".gitattributes"})
    CHECK_FALSE(is_df11_temporary(other));
  df11test::TempDir t;
  const std::string in = t.path + "/in";
  df11test::make_sample_model(in, df11test::tiny_sample());
  for (const bool folder : {false, true}) {
    const std::string left = in + (folder ? "/sub/.out.df11tmp-Q1w2E3" : "/.model.df11.df11tmp-Ab12Cd");
    if (folder)
      fs::create_directories(left);
    else
      df11test::write_file(left, {1, 2, 3});
    const Status s = compress(in, t.path + "/out", df11test::cpu_options(2), nullptr);
    INFO(s.message);
    CHECK(s.code == Error::DirUnsupportedEntry);
    CHECK(s.message.find(left + ": a temporary left by an interrupted df11 run") == 0);
    CHECK_FALSE(fs::exists(t.path + "/out"));
    fs::remove_all(folder ? in + "/sub" : left);
  }
  REQUIRE(compress(in, t.path + "/out", df11test::cpu_options(2), nullptr).ok());
}

TEST_CASE("output path: a directory output swaps in with one rename, whatever another run does at that moment",
          "[output]") {
  // Found by a black-box audit of concurrent runs: without -f, the loser of
  // a race got "Directory not empty" (Io), and an empty folder that appeared
  // was silently replaced; with -f, an old output that another run had
  // removed meanwhile failed the run, and the output path was missing
  // between the two renames of a replacement (its readers failed).
  df11test::TempDir t;
  const std::string in = t.path + "/in", out = t.path + "/out";
  df11test::make_sample_model(in, df11test::tiny_sample());
  auto& hook = testing::before_dir_rename();
  for (const bool empty : {false, true}) {
    hook = [&] {
      fs::create_directories(out);
      if (!empty) df11test::write_file(out + "/theirs", {1});
    };
    const Status s = compress(in, out, df11test::cpu_options(2), nullptr);
    hook = nullptr;
    INFO(s.message);
    CHECK(s.code == Error::OutputExists);
    CHECK(fs::exists(out));
    CHECK(fs::exists(out + "/theirs") == !empty);  // theirs, untouched
    CHECK_FALSE(fs::exists(out + "/df11-manifest.json"));
    fs::remove_all(out);
  }
  Options f = df11test::cpu_options(2);
  f.overwrite = true;
  // -f, and a folder that is not df11's appears just before the rename: it
  // is refused as one there from the start would be, and left as it was.
  hook = [&] {
    fs::create_directories(out);
    df11test::write_file(out + "/theirs", {1});
  };
  Status early = compress(in, out, f, nullptr);
  hook = nullptr;
  CHECK(early.code == Error::OutputExists);
  CHECK(fs::exists(out + "/theirs"));
  fs::remove_all(out);
  REQUIRE(compress(in, out, f, nullptr).ok());
  // -f, and the old output vanishes just before the swap: the new one goes in.
  hook = [&] { fs::remove_all(out); };
  Status s = compress(in, out, f, nullptr);
  hook = nullptr;
  INFO(s.message);
  CHECK(s.ok());
  CHECK(fs::exists(out + "/df11-manifest.json"));
  // -f replacing an output: it is there throughout (the hook sees it
  // just before; a swap leaves no moment without it), the old one is gone
  // after, and nothing is left beside it.
  df11test::write_file(out + "/stale.txt", {7});  // an extra file of the old output only
  bool seen = false;
  hook = [&] { seen = fs::exists(out + "/stale.txt"); };
  s = compress(in, out, f, nullptr);
  hook = nullptr;
  CHECK(s.ok());
  CHECK(seen);
  CHECK_FALSE(fs::exists(out + "/stale.txt"));
  CHECK(df11test::temporaries_in(t.path).empty());
  VerifyReport vr;
  CHECK(verify(out, "", df11test::cpu_options(2), &vr).ok());
}
