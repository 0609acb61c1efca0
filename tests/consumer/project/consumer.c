/* The C API from an installed ckpt: save a distributed array and a replicated scalar,
 * restore them through a second handle into zeroed buffers, and check every value. */

#include <ckpt/ckpt.h>

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#define N 6

static int check(ckpt_status s, const char *what) {
  if (s != CKPT_OK) {
    fprintf(stderr, "C consumer: %s failed: %s (%s)\n", what, ckpt_status_name(s), ckpt_last_error());
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  int rank, size, bad = 0, any = 0, restored = 0, i;
  double x[N], y[N], h = 0.125, h2 = 0;
  int64_t step = -1;
  uint64_t global[1], offset[1], count[1] = {N};
  ckpt_handle *ck = NULL;

  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 2) {
    if (rank == 0) fprintf(stderr, "usage: consumer_c DIR\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  global[0] = (uint64_t)N * (uint64_t)size;
  offset[0] = (uint64_t)N * (uint64_t)rank;
  for (i = 0; i < N; ++i) {
    x[i] = 10.0 * rank + i + 0.5;
    y[i] = 0;
  }

  bad |= check(ckpt_open(MPI_COMM_WORLD, argv[1], &(ckpt_options){.quiet = 1}, &ck), "ckpt_open");
  if (!bad) bad |= check(ckpt_protect_distributed(ck, "x", CKPT_F64, x, 1, global, offset, count), "protect x");
  if (!bad) bad |= check(ckpt_protect_replicated(ck, "h", CKPT_F64, &h, 0, NULL), "protect h");
  if (!bad) bad |= check(ckpt_save(ck, 3, 0.75), "ckpt_save");
  if (ck) bad |= check(ckpt_close(&ck), "ckpt_close");

  if (!bad) bad |= check(ckpt_open(MPI_COMM_WORLD, argv[1], &(ckpt_options){.quiet = 1}, &ck), "ckpt_open 2");
  if (!bad) bad |= check(ckpt_protect_distributed(ck, "x", CKPT_F64, y, 1, global, offset, count), "protect x 2");
  if (!bad) bad |= check(ckpt_protect_replicated(ck, "h", CKPT_F64, &h2, 0, NULL), "protect h 2");
  if (!bad) bad |= check(ckpt_restore(ck, &restored, &step), "ckpt_restore");
  if (ck) bad |= check(ckpt_close(&ck), "ckpt_close 2");
  if (!bad && (!restored || step != 3 || h2 != h)) bad = 1;
  for (i = 0; i < N; ++i)
    if (y[i] != x[i]) bad = 1;

  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) printf("C consumer: ckpt %s, restored step %lld: %s\n", ckpt_version(), (long long)step, any ? "FAILED" : "ok");
  MPI_Finalize();
  return any;
}
