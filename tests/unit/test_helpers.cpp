#include "test_helpers.hpp"

#include <hdf5.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <unistd.h>

namespace ckpt_test {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

ScratchDir::ScratchDir(MPI_Comm comm) : comm_(comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  char buf[4096] = {};
  if (rank == 0) {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckpt-test-XXXXXX";
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("mkdtemp failed");
    std::snprintf(buf, sizeof buf, "%s", tmpl.c_str());
  }
  MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, comm);
  path_ = buf;
}

ScratchDir::~ScratchDir() {
  int rank = 0;
  MPI_Barrier(comm_);
  MPI_Comm_rank(comm_, &rank);
  if (rank == 0) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

MPI_Comm first_ranks(int n) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &c);
  return c;
}

void free_sub(MPI_Comm &c) {
  if (c != MPI_COMM_NULL)
    MPI_Comm_free(&c);
}

ckpt::Options test_options(const std::string &dir) {
  ckpt::Options o;
  o.dir = dir;
  o.quiet = true;
  o.signals.clear();
  o.final = false;
  o.keep = 0;
  return o;
}

void flip_byte(const std::string &file, long offset) {
  std::FILE *f = std::fopen(file.c_str(), "r+b");
  if (!f)
    throw std::runtime_error("cannot open " + file);
  std::fseek(f, offset, SEEK_SET);
  int c = std::fgetc(f);
  std::fseek(f, offset, SEEK_SET);
  std::fputc(c ^ 0x5a, f);
  std::fclose(f);
}

long dataset_offset(const std::string &file, const std::string &name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return static_cast<long>(off);
}

} // namespace ckpt_test
