// libFuzzer target: the checkpoint reader and the catalog scan on arbitrary bytes.
//
// The input becomes a checkpoint file `ckpt-000000000001.h5` in a scratch directory, its
// first bytes also become the LATEST pointer and the name of a second directory entry.
// Then list_checkpoints, read_latest, inspect and verify run on it, as restore and
// `ckpt verify` do. Any ckpt::Error is an expected answer to bad bytes; a crash, a
// sanitizer report, a leak, another exception type or a hang is a bug.
//
// Built with clang++ -fsanitize=fuzzer,address by tests/faults/fuzz/run_fuzz.sh.

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const fs::path &scratch() {
  static const fs::path dir = [] {
    const char *base = std::getenv("CKPT_FUZZ_SCRATCH");
    fs::path d = fs::path(base && *base ? base : "/dev/shm") / ("ckpt-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

void write(const fs::path &p, const std::uint8_t *data, std::size_t size) {
  std::FILE *f = std::fopen(p.c_str(), "wb");
  if (!f)
    std::abort();
  if (size && std::fwrite(data, 1, size, f) != size)
    std::abort();
  std::fclose(f);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const fs::path &dir = scratch();
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir, ec))
    fs::remove_all(e.path(), ec);
  const fs::path file = dir / "ckpt-000000000001.h5";
  write(file, data, size);
  const std::size_t head = size < 64 ? size : 64;
  write(dir / "LATEST", data, head);
  // A second entry named by the input's first bytes (a file name cannot hold '/' or NUL).
  std::string name(reinterpret_cast<const char *>(data), size < 40 ? size : 40);
  for (char &c : name)
    if (c == '/' || c == '\0')
      c = '_';
  if (!name.empty() && name != "." && name != "..")
    write(dir / name, nullptr, 0);

  try {
    (void)ckpt::read_latest(dir);
    for (const auto &e : ckpt::list_checkpoints(dir)) {
      try {
        const auto info = ckpt::inspect(e.path);
        (void)info.field("u");
      } catch (const ckpt::Error &) {
      }
      const auto rep = ckpt::verify(e.path);
      if (!rep.ok && rep.reason.empty())
        std::abort(); // a failed verify must say why
    }
  } catch (const ckpt::Error &) {
  }
  return 0;
}
