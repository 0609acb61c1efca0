/* count_calls.c: an LD_PRELOAD library that counts, per process, the calls that make up
 * the fixed cost of a checkpoint: MPI collectives (through the PMPI profiling interface),
 * fsync/fdatasync, rename, and HDF5 file creates and opens. The counters are read with
 * ckpt_count_read(), which a benchmark finds with dlsym(RTLD_DEFAULT, ...) when the library
 * is preloaded (apps/bench/save_cost.cpp, `ckpt-save-cost`).
 *
 *   LD_PRELOAD=build/lib/libckpt_count_calls.so mpiexec -n 4 build/bin/ckpt-save-cost
 *
 * Every call is forwarded unchanged: MPI functions to their PMPI_ twin, the others to the
 * next definition (dlsym RTLD_NEXT). Counters are atomic (the async writer thread fsyncs). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  count_collective,   /* blocking collectives */
  count_icollective,  /* nonblocking collectives started */
  count_fsync,        /* fsync + fdatasync */
  count_rename,       /* rename + renameat */
  count_h5create,     /* H5Fcreate */
  count_h5open,       /* H5Fopen */
  count_n
};

static long long counters[count_n];

static void bump(int which) { __atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED); }

/* Copies the counters (collective, icollective, fsync, rename, h5create, h5open) to out,
 * which holds at least `n` entries; returns how many it wrote. */
int ckpt_count_read(long long *out, int n) {
  int i;
  for (i = 0; i < n && i < count_n; ++i)
    out[i] = __atomic_load_n(&counters[i], __ATOMIC_RELAXED);
  return i;
}

/* The path of a loaded object whose name contains `part` (for libraries that Python loaded
 * with RTLD_LOCAL, which RTLD_NEXT does not search). */
struct find_object {
  const char *part;
  const char *path;
};
static int find_object_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct find_object *f = data;
  (void)size;
  if (info->dlpi_name && strstr(info->dlpi_name, f->part)) {
    f->path = info->dlpi_name;
    return 1;
  }
  return 0;
}

static void *next_symbol_in(const char *name, const char *library) {
  void *p = dlsym(RTLD_NEXT, name);
  if (!p && library) {
    struct find_object f = {library, NULL};
    dl_iterate_phdr(find_object_cb, &f);
    void *h = f.path ? dlopen(f.path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
    p = h ? dlsym(h, name) : NULL;
  }
  if (!p) {
    fprintf(stderr, "count_calls: %s not found\n", name);
    abort();
  }
  return p;
}

static void *next_symbol(const char *name) { return next_symbol_in(name, NULL); }

/* ---- MPI collectives (Open MPI 4 prototypes) ---- */

int MPI_Barrier(MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Barrier(comm);
}
int MPI_Bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Bcast(buf, count, type, root, comm);
}
int MPI_Allreduce(const void *s, void *r, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Allreduce(s, r, count, type, op, comm);
}
int MPI_Reduce(const void *s, void *r, int count, MPI_Datatype type, MPI_Op op, int root, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Reduce(s, r, count, type, op, root, comm);
}
int MPI_Allgather(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Allgather(s, sc, st, r, rc, rt, comm);
}
int MPI_Allgatherv(const void *s, int sc, MPI_Datatype st, void *r, const int rc[], const int displs[],
                   MPI_Datatype rt, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Allgatherv(s, sc, st, r, rc, displs, rt, comm);
}
int MPI_Gather(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, int root, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Gather(s, sc, st, r, rc, rt, root, comm);
}
int MPI_Gatherv(const void *s, int sc, MPI_Datatype st, void *r, const int rc[], const int displs[],
                MPI_Datatype rt, int root, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Gatherv(s, sc, st, r, rc, displs, rt, root, comm);
}
int MPI_Scatter(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, int root, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Scatter(s, sc, st, r, rc, rt, root, comm);
}
int MPI_Alltoall(const void *s, int sc, MPI_Datatype st, void *r, int rc, MPI_Datatype rt, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Alltoall(s, sc, st, r, rc, rt, comm);
}
int MPI_Scan(const void *s, void *r, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Scan(s, r, count, type, op, comm);
}
int MPI_Exscan(const void *s, void *r, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  bump(count_collective);
  return PMPI_Exscan(s, r, count, type, op, comm);
}
int MPI_Iallreduce(const void *s, void *r, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req) {
  bump(count_icollective);
  return PMPI_Iallreduce(s, r, count, type, op, comm, req);
}
int MPI_Ibarrier(MPI_Comm comm, MPI_Request *req) {
  bump(count_icollective);
  return PMPI_Ibarrier(comm, req);
}
int MPI_Ibcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm, MPI_Request *req) {
  bump(count_icollective);
  return PMPI_Ibcast(buf, count, type, root, comm, req);
}

/* ---- POSIX ---- */

int fsync(int fd) {
  static int (*real)(int);
  if (!real)
    real = (int (*)(int))next_symbol("fsync");
  bump(count_fsync);
  return real(fd);
}
int fdatasync(int fd) {
  static int (*real)(int);
  if (!real)
    real = (int (*)(int))next_symbol("fdatasync");
  bump(count_fsync);
  return real(fd);
}
int rename(const char *from, const char *to) {
  static int (*real)(const char *, const char *);
  if (!real)
    real = (int (*)(const char *, const char *))next_symbol("rename");
  bump(count_rename);
  return real(from, to);
}

/* ---- HDF5 (hid_t is int64_t since HDF5 1.10) ---- */

int64_t H5Fcreate(const char *name, unsigned flags, int64_t fcpl, int64_t fapl) {
  static int64_t (*real)(const char *, unsigned, int64_t, int64_t);
  if (!real)
    real = (int64_t (*)(const char *, unsigned, int64_t, int64_t))next_symbol_in("H5Fcreate", "libhdf5");
  bump(count_h5create);
  return real(name, flags, fcpl, fapl);
}
int64_t H5Fopen(const char *name, unsigned flags, int64_t fapl) {
  static int64_t (*real)(const char *, unsigned, int64_t);
  if (!real)
    real = (int64_t (*)(const char *, unsigned, int64_t))next_symbol_in("H5Fopen", "libhdf5");
  bump(count_h5open);
  return real(name, flags, fapl);
}
