/* Thomson problem: N unit charges on the unit sphere relaxing to minimal Coulomb energy.
 * Forces are computed in parallel over the ranks of a communicator; every reduction is done
 * in a fixed order so that the result is bitwise the same on any number of ranks. */
#ifndef CAPSID_THOMSON_H
#define CAPSID_THOMSON_H

#include <mpi.h>
#include <stdint.h>

typedef struct thomson {
  MPI_Comm comm;
  int rank, size;
  int64_t n;        /* number of points */
  int64_t lo, cnt;  /* this rank's block of points: [lo, lo + cnt) */
  int *counts3, *displs3; /* allgatherv of positions (3 doubles per point) */
  int *counts1, *displs1; /* allgatherv of per-point energies */
  double *all;      /* n x 3: every position, gathered */
  double *trial;    /* cnt x 3: trial positions of this rank */
  double *force;    /* cnt x 3: tangential force at the current positions */
  double *ftrial;   /* cnt x 3: tangential force at the trial positions */
  double *e_local;  /* cnt: energy of each own point with all others */
  double *e_all;    /* n */
  double energy;    /* energy at the current positions */
} thomson;

/* Sets up the block distribution and work buffers. Collective. Returns 0 or -1 (no memory). */
int thomson_init(thomson *t, MPI_Comm comm, int64_t n);
void thomson_free(thomson *t);

/* Fills this rank's block x (cnt x 3) with the points of a random start drawn from `seed`
 * (every rank draws all n points, so the start does not depend on the rank count). Local. */
void thomson_random_start(const thomson *t, uint64_t seed, double *x);

/* Energy and tangential forces at positions x (this rank's block). Collective. */
void thomson_eval(thomson *t, const double *x, double *force, double *energy);

/* One gradient-descent step with step control: trial x + h F projected to the sphere;
 * accepted (and h grown) when the energy drops, else rejected and h halved. Needs
 * t->force and t->energy valid for x. Collective. Returns 1 when accepted. */
int thomson_step(thomson *t, double *x, double *h);

/* Gathers every position into t->all. Collective. */
void thomson_gather(thomson *t, const double *x);

/* Coordination numbers of the points in `all` (n x 3) from their Delaunay triangulation on
 * the sphere (the convex hull). coord[i] receives the number of neighbours of point i.
 * Returns 0 when the hull is a proper triangulation (E = 3n - 6, F = 2n - 4), 1 when it is
 * degenerate (four or more co-circular points), -1 when out of memory. Local. */
int thomson_coordination(const double *all, int64_t n, int *coord);

/* 64-bit FNV-1a digest of the bytes of n x 3 doubles, taken in little-endian order. */
uint64_t thomson_digest(const double *all, int64_t n);

#endif
