// Security: planted symlinks are never followed to overwrite another file, created files
// honour the umask, and loading a checkpoint never executes code.
#include "test_helpers.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace ckpt_test;
namespace fs = std::filesystem;
using ckpt::Errc;

namespace {

std::string read_all(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_symlink(const std::string &p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

} // namespace

// Symlinks to a victim file planted at every path save writes: the temp file, the final
// name, LATEST and its temp, the statistics log, and an old checkpoint that pruning deletes.
TEST(Symlinks, PlantedLinksAreNotFollowed) {
  ScratchDir dir;
  const std::string victim = dir / "victim.txt";
  const std::string content = "precious data that must survive\n";
  std::vector<double> x(16, 3.0);
  ckpt::Options o = test_options(dir / "ck");
  o.keep = 1;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.replicated("x", x.data(), {16});
  cp.save(1);
  const std::vector<std::string> planted = {".ckpt-000000000002.h5.tmp", "ckpt-000000000002.h5", ".LATEST.tmp",
                                            "LATEST", "ckpt-stats.jsonl"};
  if (world_rank() == 0) {
    std::ofstream(victim) << content;
    for (const auto &name : planted) {
      fs::remove(dir / ("ck/" + name));
      fs::create_symlink(victim, dir / ("ck/" + name));
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  x.assign(16, 4.0);
  cp.save(2);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(read_all(victim), content);
  EXPECT_FALSE(is_symlink(dir / "ck/ckpt-000000000002.h5"));
  EXPECT_FALSE(is_symlink(dir / "ck/LATEST"));
  EXPECT_TRUE(ckpt::verify(dir / "ck/ckpt-000000000002.h5").ok);
  EXPECT_EQ(ckpt::read_latest(dir / "ck"), std::optional<std::int64_t>(2));
  EXPECT_FALSE(fs::exists(dir / "ck/ckpt-000000000001.h5")); // pruned (keep 1)

  // A link named like an old checkpoint is pruned as a link; its target stays.
  if (world_rank() == 0)
    fs::create_symlink(victim, dir / "ck/ckpt-000000000000.h5");
  MPI_Barrier(MPI_COMM_WORLD);
  cp.save(3);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(read_all(victim), content);

  // LATEST is rewritten in place when it is a plain file with one link; a hard link
  // planted there is replaced, not written through.
  if (world_rank() == 0) {
    fs::remove(dir / "ck/LATEST");
    fs::create_hard_link(victim, dir / "ck/LATEST");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  cp.save(4);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(read_all(victim), content);
  EXPECT_EQ(ckpt::read_latest(dir / "ck"), std::optional<std::int64_t>(4));
}

// A link planted at the lock file is refused, not followed.
TEST(Symlinks, LockFileLinkIsRefused) {
  ScratchDir dir;
  const std::string victim = dir / "victim.txt";
  if (world_rank() == 0) {
    std::ofstream(victim) << "keep me";
    fs::create_directories(dir / "ck");
    fs::create_symlink(victim, dir / "ck/.lock");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::string msg;
  EXPECT_EQ(error_code_of([&] { ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "ck")); }, &msg), Errc::io);
  EXPECT_NE(msg.find(".lock"), std::string::npos) << msg;
  EXPECT_EQ(read_all(victim), "keep me");
}

// Every file ckpt creates has mode 0666 & ~umask (no more, no less).
TEST(Umask, CreatedFilesHonourTheUmask) {
  for (mode_t mask : {mode_t(077), mode_t(022), mode_t(002), mode_t(027)}) {
    ScratchDir dir;
    const mode_t old = ::umask(mask);
    {
      double x = 1;
      ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "ck"));
      cp.replicated("x", &x);
      cp.save(1);
    }
    ::umask(old);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) {
      for (const auto &e : fs::directory_iterator(dir / "ck")) {
        struct stat st {};
        ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask)
            << e.path() << " has mode " << std::oct << (st.st_mode & 0777) << " under umask " << mask;
      }
      struct stat st {};
      ASSERT_EQ(::stat((dir / "ck").c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0777 & ~mask) << "directory under umask " << std::oct << mask;
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

namespace {
std::string undefined_symbols(const std::string &file) {
  std::FILE *p = ::popen(("nm --undefined-only " + file + " 2>/dev/null").c_str(), "r");
  std::string syms;
  if (!p)
    return syms;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    syms += buf;
  ::pclose(p);
  return syms;
}
// Names of the imported functions in `syms` among the ones that run programs or load code.
std::vector<std::string> exec_calls(const std::string &syms) {
  std::vector<std::string> found;
  std::istringstream in(syms);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = line.substr(line.find_last_of(' ') + 1);
    name = name.substr(0, name.find('@'));
    for (const char *bad : {"system", "popen", "execv", "execl", "execve", "execvp", "execlp", "dlopen", "fork",
                            "vfork", "posix_spawn", "posix_spawnp"})
      if (name == bad)
        found.push_back(name);
  }
  return found;
}
} // namespace

// The code that reads checkpoints (catalog, format, checksums, HDF5 handles, the
// Checkpointer) imports nothing that runs a program or loads code. The only exception in
// the library is job_env.cpp, which runs `scontrol show job <id>` (the id validated as
// digits) to learn the SLURM end time; it never sees checkpoint contents.
TEST(SafeLoading, ReadingCodeHasNoCodeExecutionCalls) {
  if (world_rank() != 0)
    return;
  const char *objdir = std::getenv("CKPT_OBJECT_DIR");
  const char *lib = std::getenv("CKPT_LIBRARY_PATH");
  ASSERT_NE(objdir, nullptr) << "CKPT_OBJECT_DIR is set by ctest";
  ASSERT_NE(lib, nullptr) << "CKPT_LIBRARY_PATH is set by ctest";
  // One folder of object files per layer of libckpt, separated by ':'.
  int objects = 0;
  bool format_objects = false;
  const std::string dirs = objdir;
  for (std::size_t start = 0, end = 0; start <= dirs.size(); start = end + 1) {
    end = std::min(dirs.find(':', start), dirs.size());
    for (const auto &e : fs::recursive_directory_iterator(dirs.substr(start, end - start))) {
      const std::string p = e.path().string();
      if (e.path().extension() != ".o" || p.find("job_env") != std::string::npos)
        continue;
      const std::string syms = undefined_symbols(p);
      if (p.find("checkpoint_file.cpp.o") != std::string::npos) {
        format_objects = true;
        EXPECT_NE(syms.find("H5Fopen"), std::string::npos) << "nm output of " << p << " looks wrong";
      }
      ++objects;
      EXPECT_TRUE(exec_calls(syms).empty()) << p << " imports " << exec_calls(syms).front();
    }
  }
  EXPECT_GE(objects, 8) << "object files of libckpt not found under " << objdir;
  EXPECT_TRUE(format_objects) << "the format layer's objects are not under " << objdir;
  const auto lib_calls = exec_calls(undefined_symbols(lib));
  for (const auto &c : lib_calls)
    EXPECT_EQ(c, "popen") << "libckpt imports " << c;
}

// A checkpoint whose strings hold shell and pickle payloads is only data to ckpt.
TEST(SafeLoading, PayloadsInTheFileAreNotExecuted) {
  ScratchDir dir;
  const std::string marker = dir / "executed";
  std::vector<double> x(4, 1.0);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "ck"));
    cp.replicated("x", x.data(), {4});
    cp.metadata("cmd", "$(touch " + marker + ") `touch " + marker + "`; touch " + marker);
    cp.save(1);
  }
  const std::string file = dir / "ck/ckpt-000000000001.h5";
  if (world_rank() == 0) {
    // A pickle that would create the marker if anything unpickled it, as an extra dataset.
    const std::string pickle = "cos\nsystem\n(S'touch " + marker + "'\ntR.";
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t n = pickle.size();
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, "payload", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, pickle.data());
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // The extra dataset breaks the header checksum: refused as damaged, never interpreted.
  EXPECT_FALSE(ckpt::verify(file).ok);
  EXPECT_EQ(error_code_of([&] { ckpt::inspect(file); }), Errc::corrupt);
  x.assign(4, 0.0);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "ck"));
  cp.replicated("x", x.data(), {4});
  EXPECT_EQ(error_code_of([&] { cp.restore(); }), Errc::no_valid_checkpoint);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(marker));
}
