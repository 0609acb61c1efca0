#pragma once
// Helpers shared by the core MPI tests.

#include <ckpt/ckpt.hpp>

#include <mpi.h>

#include <string>

namespace ckpt_test {

int world_rank();
int world_size();

/// A fresh scratch directory, the same path on every rank of `comm`, removed at scope exit
/// by rank 0. Collective over comm.
class ScratchDir {
public:
  explicit ScratchDir(MPI_Comm comm = MPI_COMM_WORLD);
  ~ScratchDir();
  const std::string &path() const { return path_; }
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
  MPI_Comm comm_;
  std::string path_;
};

/// The first `n` ranks of WORLD as a communicator (MPI_COMM_NULL on the others).
/// Collective over WORLD. Free with free_sub().
MPI_Comm first_ranks(int n);
void free_sub(MPI_Comm &c);

/// Options for tests: quiet, no signal handlers, no final save.
ckpt::Options test_options(const std::string &dir);

/// Runs `f` and returns the code of the ckpt::Error it throws (Errc::ok when none).
template <class F> ckpt::Errc error_code_of(F &&f, std::string *message = nullptr) {
  try {
    f();
  } catch (const ckpt::Error &e) {
    if (message)
      *message = e.what();
    return e.code();
  }
  return ckpt::Errc::ok;
}

/// Flips one byte at `offset` of `file` (local, no MPI).
void flip_byte(const std::string &file, long offset);
/// File offset of the raw data of dataset `name` (contiguous layout).
long dataset_offset(const std::string &file, const std::string &name);

} // namespace ckpt_test
