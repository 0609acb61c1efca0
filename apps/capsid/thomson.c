#include "thomson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t block_lo(int64_t n, int size, int r) { return n * r / size; }

int thomson_init(thomson *t, MPI_Comm comm, int64_t n) {
  memset(t, 0, sizeof *t);
  t->comm = comm;
  MPI_Comm_rank(comm, &t->rank);
  MPI_Comm_size(comm, &t->size);
  t->n = n;
  t->lo = block_lo(n, t->size, t->rank);
  t->cnt = block_lo(n, t->size, t->rank + 1) - t->lo;
  t->counts3 = malloc(sizeof(int) * (size_t)t->size);
  t->displs3 = malloc(sizeof(int) * (size_t)t->size);
  t->counts1 = malloc(sizeof(int) * (size_t)t->size);
  t->displs1 = malloc(sizeof(int) * (size_t)t->size);
  t->all = malloc(sizeof(double) * 3 * (size_t)n);
  t->e_all = malloc(sizeof(double) * (size_t)n);
  /* +1: a rank may own no point, and malloc(0) may return NULL */
  t->trial = malloc(sizeof(double) * (3 * (size_t)t->cnt + 1));
  t->force = malloc(sizeof(double) * (3 * (size_t)t->cnt + 1));
  t->ftrial = malloc(sizeof(double) * (3 * (size_t)t->cnt + 1));
  t->e_local = malloc(sizeof(double) * ((size_t)t->cnt + 1));
  if (!t->counts3 || !t->displs3 || !t->counts1 || !t->displs1 || !t->all || !t->e_all ||
      !t->trial || !t->force || !t->ftrial || !t->e_local) {
    thomson_free(t);
    return -1;
  }
  for (int r = 0; r < t->size; ++r) {
    int64_t lo = block_lo(n, t->size, r), hi = block_lo(n, t->size, r + 1);
    t->counts1[r] = (int)(hi - lo);
    t->displs1[r] = (int)lo;
    t->counts3[r] = (int)(3 * (hi - lo));
    t->displs3[r] = (int)(3 * lo);
  }
  return 0;
}

void thomson_free(thomson *t) {
  free(t->counts3); free(t->displs3); free(t->counts1); free(t->displs1);
  free(t->all); free(t->e_all); free(t->trial); free(t->force); free(t->ftrial);
  free(t->e_local);
  memset(t, 0, sizeof *t);
}

/* splitmix64: small, well mixed, and the same on every platform */
static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

void thomson_random_start(const thomson *t, uint64_t seed, double *x) {
  uint64_t s = seed;
  const double two_pi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < t->n; ++i) {
    double z = 2.0 * uniform01(&s) - 1.0, phi = two_pi * uniform01(&s);
    double r = sqrt(1.0 - z * z);
    if (i >= t->lo && i < t->lo + t->cnt) {
      double *p = x + 3 * (i - t->lo);
      p[0] = r * cos(phi);
      p[1] = r * sin(phi);
      p[2] = z;
    }
  }
}

void thomson_gather(thomson *t, const double *x) {
  MPI_Allgatherv(x, (int)(3 * t->cnt), MPI_DOUBLE, t->all, t->counts3, t->displs3, MPI_DOUBLE,
                 t->comm);
}

void thomson_eval(thomson *t, const double *x, double *force, double *energy) {
  thomson_gather(t, x);
  const double *a = t->all;
  for (int64_t k = 0; k < t->cnt; ++k) {
    int64_t i = t->lo + k;
    double xi = a[3 * i], yi = a[3 * i + 1], zi = a[3 * i + 2];
    double e = 0, fx = 0, fy = 0, fz = 0;
    /* fixed order j = 0..n-1 whatever the block: the bits do not depend on the rank count */
    for (int64_t j = 0; j < t->n; ++j) {
      if (j == i) continue;
      double dx = xi - a[3 * j], dy = yi - a[3 * j + 1], dz = zi - a[3 * j + 2];
      double inv = 1.0 / sqrt(dx * dx + dy * dy + dz * dz);
      double inv3 = inv * inv * inv;
      e += inv;
      fx += dx * inv3;
      fy += dy * inv3;
      fz += dz * inv3;
    }
    double radial = fx * xi + fy * yi + fz * zi; /* keep only the tangential part */
    force[3 * k] = fx - radial * xi;
    force[3 * k + 1] = fy - radial * yi;
    force[3 * k + 2] = fz - radial * zi;
    t->e_local[k] = e;
  }
  MPI_Allgatherv(t->e_local, (int)t->cnt, MPI_DOUBLE, t->e_all, t->counts1, t->displs1,
                 MPI_DOUBLE, t->comm);
  double sum = 0; /* summed in point order on every rank: no MPI_SUM, whose order varies */
  for (int64_t i = 0; i < t->n; ++i) sum += t->e_all[i];
  *energy = 0.5 * sum;
}

int thomson_step(thomson *t, double *x, double *h) {
  for (int64_t k = 0; k < t->cnt; ++k) {
    double p[3];
    for (int d = 0; d < 3; ++d) p[d] = x[3 * k + d] + *h * t->force[3 * k + d];
    double inv = 1.0 / sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
    for (int d = 0; d < 3; ++d) t->trial[3 * k + d] = p[d] * inv;
  }
  double e;
  thomson_eval(t, t->trial, t->ftrial, &e);
  if (e < t->energy) { /* same decision on every rank: e is the same bits everywhere */
    memcpy(x, t->trial, sizeof(double) * 3 * (size_t)t->cnt);
    double *f = t->force;
    t->force = t->ftrial;
    t->ftrial = f;
    t->energy = e;
    *h *= 1.2;
    return 1;
  }
  *h *= 0.5;
  return 0;
}

/* Orientation of p against the plane through a, b, c: positive when p lies on the side the
 * normal (b - a) x (c - a) points to. */
static double orient(const double *a, const double *b, const double *c, const double *p) {
  double u[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
  double v[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
  double nx = u[1] * v[2] - u[2] * v[1], ny = u[2] * v[0] - u[0] * v[2],
         nz = u[0] * v[1] - u[1] * v[0];
  return nx * (p[0] - a[0]) + ny * (p[1] - a[1]) + nz * (p[2] - a[2]);
}

/* Degrees from the faces of the hull; 0 when they form a triangulation of the sphere. */
static int degrees(unsigned char *adj, int64_t n, int64_t faces, int *coord) {
  int64_t edges2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    int c = 0;
    for (int64_t j = 0; j < n; ++j) c += adj[i * n + j] ? 1 : 0;
    coord[i] = c;
    edges2 += c;
  }
  return (edges2 == 2 * (3 * n - 6) && faces == 2 * n - 4) ? 0 : 1;
}

static void add_face(unsigned char *adj, int64_t n, int64_t i, int64_t j, int64_t k) {
  adj[i * n + j] = adj[j * n + i] = 1;
  adj[i * n + k] = adj[k * n + i] = 1;
  adj[j * n + k] = adj[k * n + j] = 1;
}

/* Brute force: a triangle is a face when no point lies strictly on both sides of its plane.
 * About n^3/6 triangles, most rejected after a few points. */
static int64_t hull_brute(const double *all, int64_t n, unsigned char *adj) {
  int64_t faces = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      for (int64_t k = j + 1; k < n; ++k) {
        int pos = 0, neg = 0;
        for (int64_t p = 0; p < n && !(pos && neg); ++p) {
          if (p == i || p == j || p == k) continue;
          double s = orient(all + 3 * i, all + 3 * j, all + 3 * k, all + 3 * p);
          if (s > 0) pos = 1;
          else if (s < 0) neg = 1;
        }
        if (pos && neg) continue;
        ++faces;
        add_face(adj, n, i, j, k);
      }
  return faces;
}

/* Gift wrapping: from one face, each edge (a, b) of a known face leads to the face on its
 * other side, the point q around the line ab that leaves every point behind the plane
 * (b, a, q). About 2n faces x n points. Faces are kept counter-clockwise seen from outside;
 * `used` marks the directed edges of the faces found. Returns -1 when out of memory. */
static int64_t hull_wrap(const double *all, int64_t n, unsigned char *adj) {
  unsigned char *used = calloc((size_t)n * (size_t)n, 1);
  int64_t *stack = malloc(sizeof(int64_t) * 2 * (size_t)(6 * n + 6));
  if (!used || !stack) {
    free(used);
    free(stack);
    return -1;
  }
  /* first face: around point 0, the triangle (0, j, k) with nothing in front of it */
  int64_t a = 0, b = -1, c = -1;
  for (int64_t j = 1; j < n && b < 0; ++j)
    for (int64_t k = 1; k < n && b < 0; ++k) {
      if (k == j) continue;
      int64_t p = 0;
      for (; p < n; ++p)
        if (p != a && p != j && p != k && orient(all, all + 3 * j, all + 3 * k, all + 3 * p) > 0)
          break;
      if (p == n) b = j, c = k;
    }
  int64_t faces = 0, top = 0;
  if (b >= 0) {
    add_face(adj, n, a, b, c);
    ++faces;
    used[a * n + b] = used[b * n + c] = used[c * n + a] = 1;
    int64_t e[3][2] = {{a, b}, {b, c}, {c, a}};
    for (int m = 0; m < 3; ++m) stack[top++] = e[m][0], stack[top++] = e[m][1];
  }
  while (top > 0) {
    int64_t v = stack[--top], u = stack[--top]; /* edge u -> v of a known face */
    if (used[v * n + u]) continue;              /* the face across it is known already */
    int64_t q = -1;
    for (int64_t p = 0; p < n; ++p) {
      if (p == u || p == v) continue;
      if (q < 0 || orient(all + 3 * v, all + 3 * u, all + 3 * q, all + 3 * p) > 0) q = p;
    }
    if (q < 0 || used[u * n + q] || used[q * n + v] || faces > 2 * n) break; /* degenerate */
    add_face(adj, n, v, u, q);
    ++faces;
    used[v * n + u] = used[u * n + q] = used[q * n + v] = 1;
    if (top + 4 > 2 * (6 * n + 6)) break;
    stack[top++] = u, stack[top++] = q;
    stack[top++] = q, stack[top++] = v;
  }
  free(used);
  free(stack);
  return faces;
}

int thomson_coordination(const double *all, int64_t n, int *coord) {
  /* For points on a sphere the convex hull is the spherical Delaunay triangulation, whose
   * vertex degrees are the coordination numbers (the number of sides of each Voronoi cell).
   * Gift wrapping finds it in O(n^2); should the wrap not close into a triangulation
   * (co-planar points), the O(n^3) brute force decides. */
  unsigned char *adj = calloc((size_t)n * (size_t)n, 1);
  if (!adj) return -1;
  int64_t faces = hull_wrap(all, n, adj);
  int r = faces < 0 ? -1 : degrees(adj, n, faces, coord);
  if (r != 0) {
    memset(adj, 0, (size_t)n * (size_t)n);
    r = degrees(adj, n, hull_brute(all, n, adj), coord);
  }
  free(adj);
  return r;
}

uint64_t thomson_digest(const double *all, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < 3 * n; ++i) {
    uint64_t bits;
    memcpy(&bits, &all[i], sizeof bits);
    for (int b = 0; b < 8; ++b) {
      h ^= (bits >> (8 * b)) & 0xffu;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}
