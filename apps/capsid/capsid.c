/* capsid: the Thomson problem as a model of virus capsids and fullerenes.
 *
 * N unit charges on a sphere relax by gradient descent to minimal Coulomb energy. The
 * relaxed shell is a triangulation of hexamers with pentamer defects; for the magic numbers
 * N = 10T + 2 (72, 122, ...) it has exactly 12 five-fold points, like an icosahedral capsid.
 *
 *   capsid [-n N] [-s steps] [-e every] [-d dir] [-r seed]
 *
 * Prints the energy, the numbers of 5-, 6- and otherwise coordinated points, and
 * `result: <digest>` of the final positions, which is bitwise the same on any rank count.
 * Restartable with ckpt: it resumes by itself from its checkpoint directory, and after a
 * stop signal (SIGUSR1, SIGTERM) it checkpoints and exits with 75 (CKPT_EXIT_MORE_WORK). */
#define _POSIX_C_SOURCE 200809L
#include "thomson.h"

#include <ckpt/ckpt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
  fprintf(stderr, "usage: capsid [-n points] [-s steps] [-e every] [-d dir] [-r seed]\n"
                  "  -n  number of charges (default 122)\n"
                  "  -s  gradient-descent steps (default 3000)\n"
                  "  -e  checkpoint every this many steps (default 100; CKPT_EVERY wins)\n"
                  "  -d  checkpoint directory (default capsid-ckpt; CKPT_DIR wins)\n"
                  "  -r  seed of the random start (default 1)\n");
}

static void check(ckpt_status s, int rank) { /* errors of collective calls are agreed on */
  if (s == CKPT_OK) return;
  if (rank == 0) fprintf(stderr, "capsid: %s\n", ckpt_last_error());
  MPI_Finalize();
  exit(1);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  long long n = 122, nsteps = 3000, every = 100;
  unsigned long long seed = 1;
  const char *dir = "capsid-ckpt";
  int opt;
  while ((opt = getopt(argc, argv, "n:s:e:d:r:h")) != -1) {
    switch (opt) {
    case 'n': n = atoll(optarg); break;
    case 's': nsteps = atoll(optarg); break;
    case 'e': every = atoll(optarg); break;
    case 'd': dir = optarg; break;
    case 'r': seed = strtoull(optarg, NULL, 10); break;
    default:
      if (rank == 0) usage();
      MPI_Finalize();
      return 2;
    }
  }
  if (n < 4 || nsteps < 0 || every < 0) {
    if (rank == 0) usage();
    MPI_Finalize();
    return 2;
  }

  thomson t;
  if (thomson_init(&t, MPI_COMM_WORLD, n) != 0) {
    fprintf(stderr, "capsid: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  double *x = malloc(sizeof(double) * (3 * (size_t)t.cnt + 1)); /* this rank's points */
  double h = 0.01;                                              /* step size, adapted */
  int64_t step = 0;
  int restored = 0, stop = 0;
  thomson_random_start(&t, seed, x);
  ckpt_handle *ck;
  check(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.every = every}, &ck), rank);
  check(ckpt_protect_distributed(ck, "x", CKPT_F64, x, 2, (uint64_t[]){(uint64_t)n, 3},
                                 (uint64_t[]){(uint64_t)t.lo, 0},
                                 (uint64_t[]){(uint64_t)t.cnt, 3}), rank);
  check(ckpt_protect_replicated(ck, "h", CKPT_F64, &h, 0, NULL), rank);
  check(ckpt_restore(ck, &restored, &step), rank);
  if (rank == 0 && restored) printf("capsid: resumed at step %lld\n", (long long)step);

  thomson_eval(&t, x, t.force, &t.energy);
  while (step < nsteps && !stop) {
    thomson_step(&t, x, &h);
    ++step;
    check(ckpt_step(ck, step, (double)step, &stop), rank);
  }
  check(ckpt_close(&ck), rank);

  thomson_gather(&t, x);
  if (rank == 0 && stop) printf("capsid: stopped at step %lld, checkpointed\n", (long long)step);
  if (rank == 0 && !stop) {
    int *coord = malloc(sizeof(int) * (size_t)n);
    int degenerate = thomson_coordination(t.all, n, coord);
    long long c5 = 0, c6 = 0, other = 0;
    for (long long i = 0; i < n; ++i) {
      if (coord[i] == 5) ++c5;
      else if (coord[i] == 6) ++c6;
      else ++other;
    }
    printf("capsid: N=%lld steps=%lld ranks=%d\n", n, nsteps, t.size);
    printf("energy: %.12f\n", t.energy);
    printf("defects: fivefold=%lld sixfold=%lld other=%lld%s\n", c5, c6, other,
           degenerate ? " (degenerate hull: co-circular points)" : "");
    printf("result: %016llx\n", (unsigned long long)thomson_digest(t.all, n));
    free(coord);
  }
  free(x);
  thomson_free(&t);
  MPI_Finalize();
  return stop ? CKPT_EXIT_MORE_WORK : 0;
}
