// Bad input: every case asserts the error code, on every rank, and that nothing on disk
// was lost (the directory holds the same files with the same bytes, or the damaged file
// was only set aside).
#include "test_helpers.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/mount.h>

using namespace ckpt_test;
namespace fs = std::filesystem;
using ckpt::Errc;

namespace {

// Names and contents of the files in a directory (rank 0 reads; broadcast as one hash).
std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> m;
  for (const auto &e : fs::directory_iterator(dir)) {
    if (e.path().filename() == ".lock" || e.path().filename() == "ckpt-stats.jsonl")
      continue; // the lock's holder note and the statistics log change by design
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    m[e.path().filename().string()] = ss.str();
  }
  return m;
}

// True on every rank when the directory is unchanged since `before` (taken on rank 0).
bool unchanged(const std::string &dir, const std::map<std::string, std::string> &before) {
  MPI_Barrier(MPI_COMM_WORLD);
  int same = 1;
  if (world_rank() == 0)
    same = snapshot(dir) == before ? 1 : 0;
  MPI_Bcast(&same, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return same == 1;
}

// Same code on every rank?
bool agreed(Errc c) {
  int v = static_cast<int>(c), lo = 0, hi = 0;
  MPI_Allreduce(&v, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&v, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

// A valid checkpoint of replicated v (float64[4]), per-rank seed and distributed u at step 1.
struct Saved {
  std::vector<double> v = std::vector<double>(4, 1.5);
  int seed = 100 + world_rank();
  std::vector<std::int64_t> u = std::vector<std::int64_t>(3, world_rank());
  ckpt::Block block() const {
    return {.global = {3 * std::uint64_t(world_size())}, .offset = {3 * std::uint64_t(world_rank())}, .count = {3}};
  }
  void save(const std::string &dir, std::int64_t step = 1) {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir));
    register_all(cp);
    cp.save(step);
  }
  void register_all(ckpt::Checkpointer &cp) {
    cp.replicated("v", v.data(), {4});
    cp.per_rank("seed", &seed);
    cp.distributed("u", u.data(), block());
  }
};

} // namespace

TEST(BadInput, WrongRankCountForPerRankValues) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ScratchDir dir;
  Saved s;
  s.save(dir.path());
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  MPI_Comm fewer = first_ranks(world_size() - 1);
  if (fewer != MPI_COMM_NULL) {
    ckpt::Checkpointer cp(fewer, test_options(dir.path()));
    int seed = 0;
    cp.per_rank("seed", &seed);
    std::string msg;
    EXPECT_EQ(error_code_of([&] { cp.restore(); }, &msg), Errc::rank_count);
    EXPECT_NE(msg.find("saved by " + std::to_string(world_size()) + " ranks"), std::string::npos) << msg;
  }
  free_sub(fewer);
  EXPECT_TRUE(unchanged(dir.path(), before));
}

TEST(BadInput, DtypeShapeAndKindMismatch) {
  ScratchDir dir;
  Saved s;
  s.save(dir.path());
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  auto attempt = [&](auto &&reg) {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    reg(cp);
    std::string msg;
    const Errc c = error_code_of([&] { cp.restore(); }, &msg);
    EXPECT_TRUE(agreed(c));
    return std::make_pair(c, msg);
  };
  std::vector<float> f(4);
  auto [c1, m1] = attempt([&](ckpt::Checkpointer &cp) { cp.replicated("v", f.data(), {4}); });
  EXPECT_EQ(c1, Errc::mismatch);
  EXPECT_NE(m1.find("float64"), std::string::npos) << m1;
  std::vector<double> v6(6);
  auto [c2, m2] = attempt([&](ckpt::Checkpointer &cp) { cp.replicated("v", v6.data(), {6}); });
  EXPECT_EQ(c2, Errc::mismatch);
  EXPECT_NE(m2.find("shape"), std::string::npos) << m2;
  std::vector<std::int64_t> u(4);
  auto [c3, m3] = attempt([&](ckpt::Checkpointer &cp) {
    cp.distributed("u", u.data(), {.global = {4 * std::uint64_t(world_size())}, .offset = {4 * std::uint64_t(world_rank())}, .count = {4}});
  });
  EXPECT_EQ(c3, Errc::mismatch);
  EXPECT_NE(m3.find("global shape"), std::string::npos) << m3;
  auto [c4, m4] = attempt([&](ckpt::Checkpointer &cp) { cp.per_rank("v", s.v.data(), {4}); });
  EXPECT_EQ(c4, Errc::mismatch);
  std::vector<std::int32_t> u32(3);
  auto [c5, m5] = attempt([&](ckpt::Checkpointer &cp) { cp.distributed("u", u32.data(), s.block()); });
  EXPECT_EQ(c5, Errc::mismatch);
  EXPECT_TRUE(unchanged(dir.path(), before));
}

TEST(BadInput, MissingField) {
  ScratchDir dir;
  Saved s;
  s.save(dir.path());
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  s.register_all(cp);
  double extra = 0;
  cp.replicated("not_saved", &extra);
  std::string msg;
  EXPECT_EQ(error_code_of([&] { cp.restore(); }, &msg), Errc::missing_field);
  EXPECT_NE(msg.find("'not_saved'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("it holds:"), std::string::npos) << msg;
  EXPECT_TRUE(unchanged(dir.path(), before));
}

TEST(BadInput, UnknownFormatVersionIsRefusedAndKept) {
  ScratchDir dir;
  Saved s;
  s.save(dir.path(), 1);
  s.save(dir.path(), 2);
  const std::string file = dir / ckpt::checkpoint_file_name(2);
  if (world_rank() == 0) {
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "ckpt_format_version", H5P_DEFAULT);
    const int v[2] = {99, 3};
    H5Awrite(a, H5T_NATIVE_INT, v);
    H5Aclose(a);
    H5Fclose(f);
  }
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  s.register_all(cp);
  std::string msg;
  const Errc c = error_code_of([&] { cp.restore(); }, &msg);
  EXPECT_EQ(c, Errc::unsupported_version);
  EXPECT_TRUE(agreed(c));
  EXPECT_NE(msg.find("99.3"), std::string::npos) << msg;
  // Not silently skipped for the older one (that would lose the newer run's progress),
  // not renamed, not deleted.
  EXPECT_TRUE(unchanged(dir.path(), before));
  EXPECT_EQ(error_code_of([&] { ckpt::inspect(file); }), Errc::unsupported_version);
  EXPECT_FALSE(ckpt::verify(file).ok);
}

TEST(BadInput, NonHdf5FileIsSkippedAndKeptAside) {
  ScratchDir dir;
  Saved s;
  s.save(dir.path(), 1);
  const std::string bogus = dir / ckpt::checkpoint_file_name(5);
  const std::string text = "#!/bin/sh\necho this is not HDF5\n";
  if (world_rank() == 0)
    std::ofstream(bogus) << text;
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(error_code_of([&] { ckpt::inspect(bogus); }), Errc::corrupt);
  EXPECT_FALSE(ckpt::verify(bogus).ok);
  s.v.assign(4, 0.0);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    s.register_all(cp);
    EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(1));
  }
  EXPECT_EQ(s.v, std::vector<double>(4, 1.5));
  // The foreign file is set aside with its bytes, not deleted.
  MPI_Barrier(MPI_COMM_WORLD);
  std::ifstream in(bogus + ".corrupt");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), text);
  EXPECT_TRUE(ckpt::verify(dir / ckpt::checkpoint_file_name(1)).ok);
}

TEST(BadInput, OnlyForeignFilesGiveNoValidCheckpoint) {
  ScratchDir dir;
  if (world_rank() == 0) {
    std::ofstream(dir / ckpt::checkpoint_file_name(3)) << "junk";
    std::ofstream(dir / ckpt::checkpoint_file_name(4)); // empty
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Saved s;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  s.register_all(cp);
  std::string msg;
  const Errc c = error_code_of([&] { cp.restore(); }, &msg);
  EXPECT_EQ(c, Errc::no_valid_checkpoint);
  EXPECT_TRUE(agreed(c));
  EXPECT_NE(msg.find("none of the 2 checkpoints"), std::string::npos) << msg;
}

TEST(BadInput, EmptyAndMissingDirectory) {
  ScratchDir dir;
  Saved s;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    s.register_all(cp);
    EXPECT_EQ(cp.restore(), std::nullopt);
  }
  EXPECT_TRUE(ckpt::list_checkpoints(dir / "does-not-exist").empty());
  EXPECT_EQ(ckpt::read_latest(dir.path()), std::nullopt);
  EXPECT_EQ(error_code_of([&] { ckpt::inspect(dir / "does-not-exist.h5"); }), Errc::io);
  EXPECT_FALSE(ckpt::verify(dir / "does-not-exist.h5").ok);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "new/nested"));
    s.register_all(cp);
    EXPECT_EQ(cp.restore(), std::nullopt);
    cp.save(1);
  }
  EXPECT_TRUE(ckpt::verify(dir / "new/nested/ckpt-000000000001.h5").ok);
}

TEST(BadInput, DirectoryUnderAFile) {
  ScratchDir dir;
  if (world_rank() == 0)
    std::ofstream(dir / "afile") << "x";
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg;
  const Errc c = error_code_of([&] { ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "afile/ckpt")); }, &msg);
  EXPECT_EQ(c, Errc::io);
  EXPECT_TRUE(agreed(c));
  EXPECT_NE(msg.find("afile/ckpt"), std::string::npos) << msg;
}

// Root ignores permission bits, so "unwritable" is a read-only bind mount.
TEST(BadInput, ReadOnlyDirectory) {
  ScratchDir dir;
  Saved s;
  const std::string src = dir / "src", ro = dir / "ro";
  s.save(src, 1);
  int mounted = 0;
  if (world_rank() == 0) {
    fs::create_directories(ro);
    if (::mount(src.c_str(), ro.c_str(), nullptr, MS_BIND, nullptr) == 0) {
      if (::mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0)
        mounted = 1;
      else
        ::umount(ro.c_str());
    }
  }
  MPI_Bcast(&mounted, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!mounted)
    GTEST_SKIP() << "cannot create a read-only bind mount here (needs root and mount rights)";
  const auto before = world_rank() == 0 ? snapshot(src) : decltype(snapshot(""))();
  std::string msg;
  const Errc c = error_code_of([&] {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(ro));
    s.register_all(cp);
    cp.save(2);
  }, &msg);
  EXPECT_EQ(c, Errc::io);
  EXPECT_TRUE(agreed(c));
  EXPECT_NE(msg.find("not writable"), std::string::npos) << msg;
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    EXPECT_EQ(::umount(ro.c_str()), 0);
  }
  EXPECT_TRUE(unchanged(src, before));
  EXPECT_TRUE(ckpt::verify(src + "/" + ckpt::checkpoint_file_name(1)).ok);
}

// Two Checkpointers on one directory: the second gets Errc::locked on every rank, the
// first keeps working, and the lock is free again once the first is gone.
TEST(BadInput, SecondWriterOfADirectoryIsLockedOut) {
  ScratchDir dir;
  Saved s;
  ckpt::Checkpointer first(MPI_COMM_WORLD, test_options(dir.path()));
  s.register_all(first);
  first.save(1);
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  std::string msg;
  const Errc c = error_code_of([&] { ckpt::Checkpointer second(MPI_COMM_WORLD, test_options(dir.path())); }, &msg);
  EXPECT_EQ(c, Errc::locked);
  EXPECT_TRUE(agreed(c));
  EXPECT_NE(msg.find("in use by another job"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pid"), std::string::npos) << msg; // names the holder
  EXPECT_TRUE(unchanged(dir.path(), before));
  first.save(2);
  EXPECT_EQ(ckpt::list_checkpoints(dir.path()).size(), 2u);
  {
    ckpt::Checkpointer moved(std::move(first)); // the lock moves with the Checkpointer
    EXPECT_EQ(error_code_of([&] { ckpt::Checkpointer again(MPI_COMM_WORLD, test_options(dir.path())); }), Errc::locked);
  }
  EXPECT_EQ(error_code_of([&] { ckpt::Checkpointer third(MPI_COMM_WORLD, test_options(dir.path())); }), Errc::ok);
}

TEST(BadInput, NamesWithSlashDotDotOrControlCharacters) {
  ScratchDir dir;
  Saved s;
  s.save(dir.path());
  const auto before = world_rank() == 0 ? snapshot(dir.path()) : decltype(snapshot(""))();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  double x = 0;
  for (const std::string &bad : std::vector<std::string>{"a/b", "/abs", "..", "../escape", "a..b", std::string("nul\0x", 5), "tab\tname",
                                "new\nline", "esc\x1b[31m", "del\x7f", "", "_ckpt", "sp ace", std::string(256, 'a')}) {
    std::string msg;
    EXPECT_EQ(error_code_of([&] { cp.replicated(bad, &x); }, &msg), Errc::invalid_argument) << bad;
    EXPECT_EQ(error_code_of([&] { cp.metadata(bad, "v"); }), Errc::invalid_argument) << bad;
  }
  // Values of metadata may hold anything; they are stored, never interpreted.
  cp.metadata("note", "$(touch /tmp/ckpt-never) ../../etc/passwd \x01\n");
  EXPECT_TRUE(unchanged(dir.path(), before));
  s.register_all(cp);
  EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(1));
  cp.save(2);
  const auto info = ckpt::inspect(dir / ckpt::checkpoint_file_name(2));
  EXPECT_EQ(info.metadata.at("note"), "$(touch /tmp/ckpt-never) ../../etc/passwd \x01\n");
  EXPECT_FALSE(fs::exists("/tmp/ckpt-never"));
}
