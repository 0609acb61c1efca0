/* C API tests, compiled as C99. The same body runs at 1, 2 and 4 ranks; every rank returns
 * the same exit status. Each test uses its own scratch directory under one temporary
 * directory, removed at the end. */
#define _XOPEN_SOURCE 700
#include <ckpt/ckpt.h>

#include <hdf5.h>
#include <mpi.h>

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rank, size, failures, checks;
static char base[512];

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    ++checks;                                                                                \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "[rank %d] %s:%d: CHECK(%s) failed; last error: %s\n", rank, __FILE__, \
              __LINE__, #cond, ckpt_last_error());                                           \
      ++failures;                                                                            \
    }                                                                                        \
  } while (0)

#define CHECK_STATUS(call, want)                                                             \
  do {                                                                                       \
    ckpt_status s_ = (call);                                                                 \
    ++checks;                                                                                \
    if (s_ != (want)) {                                                                      \
      fprintf(stderr, "[rank %d] %s:%d: %s returned %s, expected %s; last error: %s\n",      \
              rank, __FILE__, __LINE__, #call, ckpt_status_name(s_),                         \
              ckpt_status_name(want), ckpt_last_error());                                    \
      ++failures;                                                                            \
    }                                                                                        \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, CKPT_OK)

/* A fresh scratch directory path for one test (not created). */
static const char *scratch(const char *name) {
  static char path[600];
  snprintf(path, sizeof path, "%s/%s", base, name);
  return path;
}

/* Number of committed checkpoint files in dir, as rank 0 sees it, on every rank. */
static int count_checkpoints(const char *dir) {
  int n = 0;
  if (rank == 0) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      size_t len = strlen(e->d_name);
      if (strncmp(e->d_name, "ckpt-", 5) == 0 && len > 3 && strcmp(e->d_name + len - 3, ".h5") == 0)
        ++n;
    }
    if (d) closedir(d);
  }
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return n;
}

/* Path of the first checkpoint file in dir (rank 0), broadcast. */
static void first_checkpoint(const char *dir, char *out, size_t cap) {
  out[0] = '\0';
  if (rank == 0) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      size_t len = strlen(e->d_name);
      if (strncmp(e->d_name, "ckpt-", 5) == 0 && len > 3 && strcmp(e->d_name + len - 3, ".h5") == 0) {
        snprintf(out, cap, "%s/%s", dir, e->d_name);
        break;
      }
    }
    if (d) closedir(d);
  }
  MPI_Bcast(out, (int)cap, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static int all_ranks_agree(int value) {
  int lo, hi;
  MPI_Allreduce(&value, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&value, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

/* --- the tests ------------------------------------------------------------------------ */

static void test_names_and_version(void) {
  CHECK(strcmp(ckpt_status_name(CKPT_OK), "ok") == 0);
  CHECK(strcmp(ckpt_status_name(CKPT_MISMATCH), "mismatch") == 0);
  CHECK(strcmp(ckpt_status_name(CKPT_UNSUPPORTED_VERSION), "unsupported_version") == 0);
  CHECK(strcmp(ckpt_status_name((ckpt_status)99), "unknown") == 0);
  CHECK(ckpt_version() != NULL && strlen(ckpt_version()) > 0);
  ckpt_options o;
  memset(&o, 0xff, sizeof o);
  ckpt_options_init(&o);
  CHECK(o.dir == NULL && o.every == 0 && o.keep == 0 && o.nsignals == 0 && o.mode == CKPT_MODE_SYNC);
}

static void test_open_close(void) {
  const char *dir = scratch("open_close");
  ckpt_handle *h = (ckpt_handle *)&h; /* must be overwritten */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK(h != NULL);
  struct stat st;
  CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
  CHECK(ckpt_exit_code(h) == 0);
  CHECK_OK(ckpt_close(&h));
  CHECK(h == NULL);
  CHECK_OK(ckpt_close(&h)); /* closing NULL is a no-op */
  CHECK_OK(ckpt_close(NULL));

  /* options through a compound literal; the directory given in the options */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, NULL, &(ckpt_options){.dir = dir, .every = 5, .keep = -1}, &h));
  CHECK_OK(ckpt_close(&h));
}

static void test_open_errors(void) {
  ckpt_handle *h = NULL;
  /* a directory below a regular file cannot be created */
  char file[600], dir[700];
  snprintf(file, sizeof file, "%s/plain-file", base);
  if (rank == 0) {
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  snprintf(dir, sizeof dir, "%s/sub", file);
  h = (ckpt_handle *)&h;
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h), CKPT_IO);
  CHECK(h == NULL);
  CHECK(strstr(ckpt_last_error(), "plain-file") != NULL); /* the message names the path */

  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, "", NULL, &h), CKPT_INVALID_ARGUMENT);
  CHECK(h == NULL);
  CHECK(strstr(ckpt_last_error(), "empty") != NULL);
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, scratch("x"), NULL, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, scratch("x"), &(ckpt_options){.mode = (ckpt_mode)7}, &h),
               CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, scratch("x"), &(ckpt_options){.nsignals = 99}, &h),
               CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, scratch("x"), &(ckpt_options){.keep = -5}, &h),
               CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "keep") != NULL);
  /* a CKPT_* variable that does not parse is an error naming the variable */
  setenv("CKPT_EVERY", "often", 1);
  CHECK_STATUS(ckpt_open(MPI_COMM_WORLD, scratch("x"), NULL, &h), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "CKPT_EVERY") != NULL);
  unsetenv("CKPT_EVERY");
  CHECK(h == NULL);
}

static void test_null_handle(void) {
  double v = 0;
  uint64_t one = 1;
  int flag = 7;
  int64_t step = 7;
  CHECK_STATUS(ckpt_protect_distributed(NULL, "x", CKPT_F64, &v, 1, &one, &one, &one), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "NULL") != NULL);
  CHECK_STATUS(ckpt_protect_replicated(NULL, "x", CKPT_F64, &v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_per_rank(NULL, "x", CKPT_F64, &v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_metadata(NULL, "k", "v"), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_restore(NULL, &flag, &step), CKPT_INVALID_ARGUMENT);
  CHECK(flag == 0 && step == 0);
  flag = 7;
  CHECK_STATUS(ckpt_step(NULL, 1, 0, &flag), CKPT_INVALID_ARGUMENT);
  CHECK(flag == 0);
  CHECK_STATUS(ckpt_should_checkpoint(NULL, 1, &flag), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_save(NULL, 1, 0), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_request_stop(NULL), CKPT_INVALID_ARGUMENT);
  CHECK(ckpt_exit_code(NULL) == 0);
}

/* A 2-d distributed array of (4*size) x 3 doubles, 4 rows per rank; a replicated scalar and
 * vector; a per-rank counter. */
typedef struct state {
  double x[4][3];
  double h;
  int32_t params[2];
  uint64_t counter;
} state;

static void fill(state *s, int salt) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) s->x[i][j] = 1000.0 * salt + 100.0 * rank + 10.0 * i + j + 0.25;
  s->h = 0.5 * salt;
  s->params[0] = 122 + salt;
  s->params[1] = -salt;
  s->counter = 77u * (uint64_t)(rank + 1) + (uint64_t)salt;
}

static void protect(ckpt_handle *h, state *s) {
  uint64_t global[2] = {4u * (uint64_t)size, 3}, offset[2] = {4u * (uint64_t)rank, 0}, count[2] = {4, 3};
  uint64_t two = 2;
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, s->x, 2, global, offset, count));
  CHECK_OK(ckpt_protect_replicated(h, "h", CKPT_F64, &s->h, 0, NULL));
  CHECK_OK(ckpt_protect_replicated(h, "params", CKPT_I32, s->params, 1, &two));
  CHECK_OK(ckpt_protect_per_rank(h, "counter", CKPT_U64, &s->counter, 0, NULL));
}

static void test_roundtrip(void) {
  const char *dir = scratch("roundtrip");
  state a, b, want;
  ckpt_handle *h;
  int restored = 7;
  int64_t step = 7;

  fill(&a, 1);
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  protect(h, &a);
  CHECK_OK(ckpt_metadata(h, "model", "thomson"));
  CHECK_OK(ckpt_restore(h, &restored, &step)); /* empty directory: nothing to restore */
  CHECK(restored == 0 && step == 0);
  CHECK_OK(ckpt_save(h, 10, 2.5));
  CHECK_OK(ckpt_close(&h));
  CHECK(count_checkpoints(dir) == 1);

  fill(&b, 2); /* different contents, same shapes */
  want = a;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  protect(h, &b);
  CHECK_OK(ckpt_restore(h, &restored, NULL));
  CHECK(restored == 1);
  CHECK(memcmp(b.x, want.x, sizeof b.x) == 0);
  CHECK(b.h == want.h);
  CHECK(b.params[0] == want.params[0] && b.params[1] == want.params[1]);
  CHECK(b.counter == want.counter);
  CHECK_OK(ckpt_close(&h));

  /* the metadata is a root attribute "meta.model" readable by plain HDF5 */
  char file[800];
  first_checkpoint(dir, file, sizeof file);
  if (rank == 0) {
    int ok = 0;
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
      hid_t a_id = H5Aopen(f, "meta.model", H5P_DEFAULT);
      if (a_id >= 0) {
        hid_t t = H5Aget_type(a_id);
        char buf[64] = {0};
        if (H5Tis_variable_str(t) > 0) {
          char *p = NULL;
          hid_t mt = H5Tcopy(H5T_C_S1);
          H5Tset_size(mt, H5T_VARIABLE);
          if (H5Aread(a_id, mt, &p) >= 0 && p) {
            ok = strcmp(p, "thomson") == 0;
            H5free_memory(p);
          }
          H5Tclose(mt);
        } else if (H5Tget_size(t) < sizeof buf && H5Aread(a_id, t, buf) >= 0) {
          ok = strncmp(buf, "thomson", 7) == 0;
        }
        H5Tclose(t);
        H5Aclose(a_id);
      }
      H5Fclose(f);
    }
    CHECK(ok);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_metadata_errors(void) {
  ckpt_handle *h;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, scratch("metadata"), NULL, &h));
  CHECK_STATUS(ckpt_metadata(h, NULL, "v"), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_metadata(h, "k", NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_metadata(h, "bad/key", "v"), CKPT_INVALID_ARGUMENT);
  CHECK_OK(ckpt_close(&h));
}

static void test_protect_errors(void) {
  ckpt_handle *h;
  double v[8] = {0};
  uint64_t g = 8u * (uint64_t)size, off = 8u * (uint64_t)rank, cnt = 8, past = g - 4;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, scratch("protect_errors"), NULL, &h));
  CHECK_STATUS(ckpt_protect_replicated(h, NULL, CKPT_F64, v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_replicated(h, "a/b", CKPT_F64, v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_replicated(h, "..", CKPT_F64, v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_replicated(h, "v", (ckpt_dtype)42, v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "dtype") != NULL);
  CHECK_STATUS(ckpt_protect_replicated(h, "v", CKPT_F64, v, -1, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_replicated(h, "v", CKPT_F64, v, 1, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_replicated(h, "v", CKPT_F64, NULL, 0, NULL), CKPT_INVALID_ARGUMENT);
  /* a block that reaches past the end of the global array, on every rank */
  CHECK_STATUS(ckpt_protect_distributed(h, "d", CKPT_F64, v, 1, &g, &past, &cnt), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_distributed(h, "d", CKPT_F64, v, 1, &g, NULL, &cnt), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_protect_distributed_ghost(h, "d", CKPT_F64, v, 1, &g, &off, &cnt, NULL, NULL),
               CKPT_INVALID_ARGUMENT);
  CHECK_OK(ckpt_protect_distributed(h, "d", CKPT_F64, v, 1, &g, &off, &cnt));
  CHECK_STATUS(ckpt_protect_distributed(h, "d", CKPT_F64, v, 1, &g, &off, &cnt), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "'d'") != NULL); /* the message names the field */
  CHECK_STATUS(ckpt_protect_per_rank(h, "d", CKPT_F64, v, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK_OK(ckpt_close(&h));
}

static void test_protect_after_restore(void) {
  ckpt_handle *h;
  double v = 1, w = 2;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, scratch("after_restore"), NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "v", CKPT_F64, &v, 0, NULL));
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  CHECK_STATUS(ckpt_protect_replicated(h, "w", CKPT_F64, &w, 0, NULL), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "after ckpt_restore") != NULL);
  CHECK_STATUS(ckpt_protect_per_rank(h, "w", CKPT_F64, &w, 0, NULL), CKPT_INVALID_ARGUMENT);
  uint64_t one = 1, off = 0;
  CHECK_STATUS(ckpt_protect_distributed(h, "w", CKPT_F64, &w, 1, &one, &off, &one), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_INVALID_ARGUMENT); /* twice */
  CHECK(strstr(ckpt_last_error(), "twice") != NULL);
  CHECK_OK(ckpt_save(h, 1, 0)); /* the handle still works */
  CHECK_OK(ckpt_close(&h));
}

static void test_mismatch_on_restore(void) {
  const char *dir = scratch("mismatch");
  ckpt_handle *h;
  double x[5] = {1, 2, 3, 4, 5}, s = 3, pair[2] = {0, 0};
  float sf = 0;
  uint64_t g = 4u * (uint64_t)size, off = 4u * (uint64_t)rank, cnt = 4;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g, &off, &cnt));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_OK(ckpt_save(h, 3, 0));
  CHECK_OK(ckpt_close(&h));

  /* the distributed array is one element longer per rank */
  uint64_t g5 = 5u * (uint64_t)size, off5 = 5u * (uint64_t)rank, cnt5 = 5;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g5, &off5, &cnt5));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_MISMATCH);
  CHECK(strstr(ckpt_last_error(), "'x'") != NULL);
  CHECK(all_ranks_agree((int)strlen(ckpt_last_error())));
  CHECK_OK(ckpt_close(&h));

  /* a scalar restored into a vector */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g, &off, &cnt));
  uint64_t two = 2;
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, pair, 1, &two));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_MISMATCH);
  CHECK(strstr(ckpt_last_error(), "'s'") != NULL);
  CHECK_OK(ckpt_close(&h));

  /* the same size with another dtype */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g, &off, &cnt));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F32, &sf, 0, NULL));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_MISMATCH);
  CHECK_OK(ckpt_close(&h));

  /* a field the checkpoint does not have */
  double extra = 0;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g, &off, &cnt));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_OK(ckpt_protect_replicated(h, "extra", CKPT_F64, &extra, 0, NULL));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_MISSING_FIELD);
  CHECK(strstr(ckpt_last_error(), "extra") != NULL);
  CHECK_OK(ckpt_close(&h));
}

/* Rewrites the major format version of a checkpoint file, as a future ckpt would write it. */
static int set_format_major(const char *file, int32_t major) {
  int ok = 0;
  hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 0;
  hid_t a = H5Aopen(f, "ckpt_format_version", H5P_DEFAULT);
  if (a >= 0) {
    int32_t v[2];
    if (H5Aread(a, H5T_NATIVE_INT32, v) >= 0) {
      v[0] = major;
      ok = H5Awrite(a, H5T_NATIVE_INT32, v) >= 0;
    }
    H5Aclose(a);
  }
  H5Fclose(f);
  return ok;
}

static void test_unknown_version(void) {
  const char *dir = scratch("version");
  ckpt_handle *h;
  double s = 1;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_OK(ckpt_save(h, 4, 0));
  CHECK_OK(ckpt_close(&h));
  char file[800];
  first_checkpoint(dir, file, sizeof file);
  if (rank == 0) CHECK(set_format_major(file, 99));
  MPI_Barrier(MPI_COMM_WORLD);

  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_UNSUPPORTED_VERSION);
  CHECK(strstr(ckpt_last_error(), "99") != NULL);
  CHECK_OK(ckpt_close(&h));
}

static void test_corrupt(void) {
  const char *dir = scratch("corrupt");
  ckpt_handle *h;
  double s = 1;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_OK(ckpt_save(h, 4, 0));
  CHECK_OK(ckpt_close(&h));
  char file[800];
  first_checkpoint(dir, file, sizeof file);
  if (rank == 0) CHECK(truncate(file, 100) == 0);
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_STATUS(ckpt_restore(h, NULL, NULL), CKPT_NO_VALID_CHECKPOINT);
  CHECK_OK(ckpt_close(&h));
}

static void test_step_policy(void) {
  const char *dir = scratch("policy");
  ckpt_handle *h;
  state a;
  fill(&a, 3);
  int stop = 7, yes = 7, restored = 0;
  int64_t step = -1;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.every = 3, .keep = 2}, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, &restored, &step));
  CHECK(restored == 0 && step == 0);
  CHECK_OK(ckpt_should_checkpoint(h, 2, &yes));
  CHECK(yes == 0);
  CHECK_OK(ckpt_should_checkpoint(h, 3, &yes));
  CHECK(yes == 1);
  for (step = 1; step <= 10; ++step) {
    a.h = (double)step; /* the state changes every step */
    CHECK_OK(ckpt_step(h, step, 0.1 * (double)step, &stop));
    CHECK(stop == 0);
  }
  CHECK(ckpt_exit_code(h) == 0);
  CHECK_OK(ckpt_close(&h));
  CHECK(count_checkpoints(dir) == 2); /* steps 6 and 9 kept, 3 pruned */

  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, &restored, &step));
  CHECK(restored == 1 && step == 9);
  CHECK(a.h == 9.0);
  CHECK_OK(ckpt_close(&h));
}

static void test_request_stop(void) {
  const char *dir = scratch("request_stop");
  ckpt_handle *h;
  state a;
  fill(&a, 4);
  int stop = 0;
  int64_t step, stop_at = -1;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.every = 100}, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  for (step = 1; step <= 100000 && !stop; ++step) {
    a.h = (double)step;
    if (step == 4) CHECK_OK(ckpt_request_stop(h));
    CHECK_OK(ckpt_step(h, step, 0, &stop));
    if (stop) stop_at = step;
  }
  /* the ranks agree on stops only at agreement boundaries (with steps this cheap, up to
     1000 boundaries apart), so it takes effect up to two agreement periods later */
  CHECK(stop == 1 && stop_at >= 4 && stop_at <= 4 + 2 * 1000 + 1);
  CHECK(all_ranks_agree((int)stop_at));
  CHECK(ckpt_exit_code(h) == CKPT_EXIT_MORE_WORK);
  CHECK_OK(ckpt_close(&h));

  int restored = 0;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, &restored, &step));
  CHECK(restored == 1 && step == stop_at && a.h == (double)stop_at);
  CHECK_OK(ckpt_close(&h));

  /* a stop right after an explicit save of the same step saves once */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, scratch("request_stop_saved"), NULL, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  CHECK_OK(ckpt_request_stop(h));
  stop = 0;
  for (step = 1; step <= 3 && !stop; ++step) {
    CHECK_OK(ckpt_save(h, step, 0));
    CHECK_OK(ckpt_step(h, step, 0, &stop));
  }
  CHECK(stop == 1 && ckpt_exit_code(h) == CKPT_EXIT_MORE_WORK);
  CHECK_OK(ckpt_close(&h));
  CHECK(count_checkpoints(scratch("request_stop_saved")) == (int)step - 1);

  /* the stop was acted on: a new checkpointer in this process runs on */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, scratch("request_stop_after"), NULL, &h));
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  for (step = 1; step <= 3; ++step) CHECK_OK(ckpt_step(h, step, 0, &stop));
  CHECK(stop == 0 && ckpt_exit_code(h) == 0);
  CHECK_OK(ckpt_close(&h));
}

/* A real signal on rank 0 only: every rank must stop at the same step. */
static void test_signal_stop(void) {
  const char *dir = scratch("signal_stop");
  ckpt_handle *h;
  state a;
  fill(&a, 5);
  int stop = 0;
  int64_t step, stop_at = -1;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h)); /* default signals: USR1, TERM */
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  for (step = 1; step <= 100000 && !stop; ++step) {
    a.h = (double)step;
    if (step == 6 && rank == 0) raise(SIGUSR1);
    CHECK_OK(ckpt_step(h, step, 0, &stop));
    if (stop) stop_at = step;
  }
  CHECK(stop == 1 && stop_at >= 6 && stop_at <= 6 + 2 * 1000 + 1);
  CHECK(all_ranks_agree((int)stop_at));
  CHECK(ckpt_exit_code(h) == CKPT_EXIT_MORE_WORK);
  CHECK_OK(ckpt_close(&h));
  CHECK(count_checkpoints(dir) == 1);
}

static void test_ghost(void) {
  const char *dir = scratch("ghost");
  ckpt_handle *h;
  /* 3 x 4 interior per rank in a 5 x 6 allocation; ranks stacked along the first axis */
  double u[5][6], v[5][6];
  uint64_t global[2] = {3u * (uint64_t)size, 4}, offset[2] = {3u * (uint64_t)rank, 0}, count[2] = {3, 4};
  uint64_t mem[2] = {5, 6}, moff[2] = {1, 1};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) {
      u[i][j] = (i == 0 || i == 4 || j == 0 || j == 5) ? -1.0 : 100.0 * rank + 10 * i + j;
      v[i][j] = -2.0;
    }
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed_ghost(h, "u", CKPT_F64, u, 2, global, offset, count, mem, moff));
  CHECK_OK(ckpt_save(h, 1, 0));
  CHECK_OK(ckpt_close(&h));
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed_ghost(h, "u", CKPT_F64, v, 2, global, offset, count, mem, moff));
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  CHECK_OK(ckpt_close(&h));
  int same = 1;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) {
      int ghost = i == 0 || i == 4 || j == 0 || j == 5;
      if (ghost ? v[i][j] != -2.0 : v[i][j] != u[i][j]) same = 0;
    }
  CHECK(same); /* interior restored, ghost cells untouched */
}

/* A 3-D field tagged with its grid: the checkpoint carries a VTKHDF image (/VTKHDF, its
 * geometry in VTK's x-first order, its array a link to the field's dataset); restore is
 * unaffected; bad tags and two different grids are refused. */
static int read_attr_f64(hid_t obj, const char *name, double *out, int n) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t sp = H5Aget_space(a);
  int ok = H5Sget_simple_extent_npoints(sp) == n && H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
  H5Sclose(sp);
  H5Aclose(a);
  return ok;
}

static void test_grid(void) {
  const char *dir = scratch("grid");
  ckpt_handle *h;
  double u[2][3][4], v[2][3][4], w[2][3][4], s = 1;
  for (int i = 0; i < 24; ++i) {
    (&u[0][0][0])[i] = 1000.0 * rank + i;
    (&v[0][0][0])[i] = -1;
    (&w[0][0][0])[i] = 0;
  }
  uint64_t global[3] = {2u * (uint64_t)size, 3, 4}, offset[3] = {2u * (uint64_t)rank, 0, 0}, count[3] = {2, 3, 4};
  const double origin[3] = {1, 2, 3}, spacing[3] = {0.5, 0.25, 2}, bad[3] = {1, 0, 1};
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "u", CKPT_F64, u, 3, global, offset, count));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_STATUS(ckpt_grid(h, "nope", 3, origin, spacing), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_grid(h, "s", 3, origin, spacing), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_grid(h, "u", 2, origin, spacing), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "3 dimensions") != NULL);
  CHECK_STATUS(ckpt_grid(h, "u", 3, origin, bad), CKPT_INVALID_ARGUMENT);
  CHECK_STATUS(ckpt_grid(NULL, "u", 3, origin, spacing), CKPT_INVALID_ARGUMENT);
  CHECK_OK(ckpt_grid(h, "u", 3, origin, spacing));
  CHECK_OK(ckpt_save(h, 5, 0));
  /* a second field on another grid: one image per checkpoint, so the save is refused */
  CHECK_OK(ckpt_protect_distributed(h, "w", CKPT_F64, w, 3, global, offset, count));
  CHECK_OK(ckpt_grid(h, "w", 3, NULL, NULL));
  CHECK_STATUS(ckpt_save(h, 6, 0), CKPT_INVALID_ARGUMENT);
  CHECK(strstr(ckpt_last_error(), "different grids") != NULL);
  CHECK_OK(ckpt_close(&h));

  char file[800];
  first_checkpoint(dir, file, sizeof file);
  if (rank == 0) {
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    hid_t g = H5Gopen2(f, "VTKHDF", H5P_DEFAULT);
    CHECK(g >= 0);
    double org[3] = {0}, spc[3] = {0};
    CHECK(read_attr_f64(g, "Origin", org, 3) && org[0] == 3 && org[1] == 2 && org[2] == 1);
    CHECK(read_attr_f64(g, "Spacing", spc, 3) && spc[0] == 2 && spc[1] == 0.25 && spc[2] == 0.5);
    hid_t a = H5Aopen(g, "WholeExtent", H5P_DEFAULT);
    int64_t ext[6] = {0};
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT64, ext) >= 0);
    CHECK(ext[1] == 3 && ext[3] == 2 && ext[5] == (int64_t)(2 * size - 1));
    H5Aclose(a);
    H5L_info_t li;
    CHECK(H5Lget_info(f, "VTKHDF/PointData/u", &li, H5P_DEFAULT) >= 0 && li.type == H5L_TYPE_SOFT);
    hid_t d = H5Dopen2(f, "VTKHDF/PointData/u", H5P_DEFAULT);
    double all[16][3][4];
    CHECK(d >= 0 && size <= 8 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0);
    CHECK(all[2 * size - 1][2][3] == 1000.0 * (size - 1) + 23);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "u", CKPT_F64, v, 3, global, offset, count));
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  int restored = 0;
  int64_t step = -1;
  CHECK_OK(ckpt_restore(h, &restored, &step));
  CHECK(restored && step == 5 && memcmp(u, v, sizeof u) == 0);
  CHECK_OK(ckpt_close(&h));
}

/* Save on all ranks, restore on rank 0 alone: the distributed array reshards to one block;
 * per-rank state cannot follow (CKPT_RANK_COUNT) when the rank count differs. */
static void test_reshard_and_rank_count(void) {
  const char *dir = scratch("reshard");
  ckpt_handle *h;
  double x[2] = {10.0 * rank, 10.0 * rank + 1};
  int32_t mine = 5 + rank;
  uint64_t g = 2u * (uint64_t)size, off = 2u * (uint64_t)rank, cnt = 2;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, x, 1, &g, &off, &cnt));
  CHECK_OK(ckpt_protect_per_rank(h, "mine", CKPT_I32, &mine, 0, NULL));
  CHECK_OK(ckpt_save(h, 2, 0));
  CHECK_OK(ckpt_close(&h));

  MPI_Comm one;
  MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &one);
  if (rank == 0) {
    double *all = calloc(g, sizeof(double));
    uint64_t zero = 0;
    CHECK_OK(ckpt_open(one, dir, NULL, &h));
    CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, all, 1, &g, &zero, &g));
    CHECK_OK(ckpt_restore(h, NULL, NULL));
    CHECK_OK(ckpt_close(&h));
    int same = 1;
    for (int r = 0; r < size; ++r)
      if (all[2 * r] != 10.0 * r || all[2 * r + 1] != 10.0 * r + 1) same = 0;
    CHECK(same);

    int32_t m = 0;
    CHECK_OK(ckpt_open(one, dir, NULL, &h));
    CHECK_OK(ckpt_protect_distributed(h, "x", CKPT_F64, all, 1, &g, &zero, &g));
    CHECK_OK(ckpt_protect_per_rank(h, "mine", CKPT_I32, &m, 0, NULL));
    CHECK_STATUS(ckpt_restore(h, NULL, NULL), size == 1 ? CKPT_OK : CKPT_RANK_COUNT);
    if (size == 1) CHECK(m == 5);
    CHECK_OK(ckpt_close(&h));
    free(all);
    MPI_Comm_free(&one);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_env_dir_wins(void) {
  const char *dir = scratch("env_dir");
  char code_dir[700];
  snprintf(code_dir, sizeof code_dir, "%s/env_dir_code", base);
  ckpt_handle *h;
  double s = 1;
  setenv("CKPT_DIR", dir, 1);
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, code_dir, NULL, &h));
  unsetenv("CKPT_DIR");
  CHECK_OK(ckpt_protect_replicated(h, "s", CKPT_F64, &s, 0, NULL));
  CHECK_OK(ckpt_save(h, 1, 0));
  CHECK_OK(ckpt_close(&h));
  CHECK(count_checkpoints(dir) == 1);
  CHECK(count_checkpoints(code_dir) == 0);
}

static void test_async(void) {
  const char *dir = scratch("async");
  ckpt_handle *h;
  state a, b;
  fill(&a, 6);
  fill(&b, 7);
  state want = a;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.mode = CKPT_MODE_ASYNC}, &h));
  protect(h, &a);
  CHECK_OK(ckpt_save(h, 8, 0));
  fill(&a, 9); /* changing the state after save must not change the checkpoint */
  CHECK_OK(ckpt_close(&h)); /* waits for the write */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &h));
  protect(h, &b);
  int restored = 0;
  int64_t step = 0;
  CHECK_OK(ckpt_restore(h, &restored, &step));
  CHECK(restored == 1 && step == 8);
  CHECK(memcmp(&b, &want, sizeof b) == 0);
  CHECK_OK(ckpt_close(&h));
}

/* A stop in async mode whose checkpoint fails to commit: ckpt_step returns the error, does
 * not report the stop, and ckpt_exit_code is not CKPT_EXIT_MORE_WORK. And ckpt_close returns
 * the failed commit of the last pending save instead of CKPT_OK. (CKPT_TEST_FAULT makes
 * rank 0's rename of the checkpoint, the commit, fail with an I/O error.) */
static void test_async_stop_commit_failure(void) {
  const char *dir = scratch("async-stop-fail");
  ckpt_handle *h;
  state a;
  fill(&a, 3);
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.mode = CKPT_MODE_ASYNC, .nsignals = -1}, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  int stop = 0;
  CHECK_OK(ckpt_step(h, 1, 0, &stop));
  CHECK(stop == 0);
  setenv("CKPT_TEST_FAULT", "rename@0", 1);
  CHECK_OK(ckpt_request_stop(h));
  /* The stop is agreed at this boundary or the next one; its save then fails to commit. */
  ckpt_status st = CKPT_OK;
  for (int64_t s = 2; s <= 4 && st == CKPT_OK && !stop; ++s)
    st = ckpt_step(h, s, 0, &stop);
  CHECK(st == CKPT_IO);
  CHECK(strstr(ckpt_last_error(), "injected fault at 'rename'") != NULL);
  CHECK(stop == 0);
  CHECK(ckpt_exit_code(h) != CKPT_EXIT_MORE_WORK);
  CHECK(all_ranks_agree((int)st));
  CHECK(count_checkpoints(dir) == 0);
  /* ckpt_close reports the failed commit of a pending async save. */
  unsetenv("CKPT_TEST_FAULT");
  CHECK_OK(ckpt_save(h, 5, 0));
  setenv("CKPT_TEST_FAULT", "rename@0", 1);
  CHECK_STATUS(ckpt_close(&h), CKPT_IO);
  CHECK(h == NULL);
  unsetenv("CKPT_TEST_FAULT");
  CHECK(count_checkpoints(dir) == 0);
  /* The same stop with a working file system: reported once the checkpoint is durable. */
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.mode = CKPT_MODE_ASYNC, .nsignals = -1}, &h));
  protect(h, &a);
  CHECK_OK(ckpt_restore(h, NULL, NULL));
  CHECK_OK(ckpt_request_stop(h));
  stop = 0;
  int64_t at = 0;
  for (int64_t s = 1; s <= 3 && !stop; ++s) {
    CHECK_OK(ckpt_step(h, s, 0, &stop));
    at = s;
  }
  CHECK(stop == 1 && ckpt_exit_code(h) == CKPT_EXIT_MORE_WORK);
  CHECK(count_checkpoints(dir) == 1); /* committed before the stop was reported */
  CHECK_OK(ckpt_close(&h));
  (void)at;
}

/* --- harness ---------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}

/* Nested loops and phases: setup phase; sweep loop (init phase, t loop). Stops after the
 * step `stop_after` (>= 0) by ckpt_request_stop; `first` receives the first (sweep, t) run.
 * Returns ckpt_exit_code. */
typedef struct nest_state {
  int64_t sum, setups, inits;
} nest_state;

static void protect_nest(ckpt_handle *h, nest_state *s) {
  CHECK_OK(ckpt_protect_replicated(h, "sum", CKPT_I64, &s->sum, 0, NULL));
  CHECK_OK(ckpt_protect_replicated(h, "setups", CKPT_I64, &s->setups, 0, NULL));
  CHECK_OK(ckpt_protect_replicated(h, "inits", CKPT_I64, &s->inits, 0, NULL));
}

static int run_nest(const char *dir, nest_state *s, int64_t stop_after, int64_t first[2], int64_t last[2]) {
  ckpt_handle *h;
  int64_t sweep = -1, t = -1;
  first[0] = first[1] = last[0] = last[1] = -1;
  /* agree at every step boundary: a stop requested after a step comes at the next one, a
     known position in these short loops */
  setenv("CKPT_AGREE_SECONDS", "0", 1);
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, &(ckpt_options){.every = 4}, &h));
  unsetenv("CKPT_AGREE_SECONDS");
  protect_nest(h, s);
  for (int r = ckpt_phase(h, "setup"); r > 0; r = ckpt_loop_next(h, NULL)) ++s->setups;
  for (int r = ckpt_loop(h, "sweep", 3, &sweep); r > 0; r = ckpt_loop_next(h, &sweep)) {
    for (int q = ckpt_phase(h, "init"); q > 0; q = ckpt_loop_next(h, NULL)) ++s->inits;
    for (int q = ckpt_loop(h, "t", 5, &t); q > 0; q = ckpt_loop_next(h, &t)) {
      if (first[0] < 0) first[0] = sweep, first[1] = t;
      last[0] = sweep, last[1] = t;
      s->sum += 10 * sweep + t;
      if (ckpt_loop_step(h) + 1 == stop_after) CHECK_OK(ckpt_request_stop(h));
    }
  }
  CHECK(ckpt_loop_status(h) == CKPT_OK);
  /* after a stop, a later loop does not run */
  int64_t i = -1;
  if (ckpt_exit_code(h)) CHECK(ckpt_loop(h, "later", 3, &i) == 0);
  int rc = ckpt_exit_code(h);
  CHECK_OK(ckpt_close(&h));
  return rc;
}

static void test_nested_loops(void) {
  char dir[600], bdir[600];
  snprintf(dir, sizeof dir, "%s", scratch("nested_loops")); /* scratch() reuses its buffer */
  snprintf(bdir, sizeof bdir, "%s", scratch("nested_break"));
  const int64_t full = 5 * (0 + 10 + 20) + 3 * (0 + 1 + 2 + 3 + 4);
  int64_t first[2], last[2];
  nest_state a = {0, 0, 0};
  CHECK(run_nest(scratch("nested_loops_ref"), &a, -1, first, last) == 0);
  CHECK(a.sum == full && a.setups == 1 && a.inits == 3);
  CHECK(first[0] == 0 && first[1] == 0 && last[0] == 2 && last[1] == 4);

  /* steps: setup 1; sweep 0: init 2, t 3..7; sweep 1: init 8, t 9..13. Stop at step 10. */
  nest_state b = {0, 0, 0};
  CHECK(run_nest(dir, &b, 10, first, last) == CKPT_EXIT_MORE_WORK);
  CHECK(last[0] == 1 && (last[1] == 1 || last[1] == 2));
  CHECK(all_ranks_agree((int)last[1]));
  int64_t stopped_at[2] = {last[0], last[1]};
  /* a different nest where a saved loop was running: -1, CKPT_MISMATCH, and it stays so */
  {
    ckpt_handle *m;
    int64_t j;
    nest_state d = {0, 0, 0};
    CHECK_OK(ckpt_open(MPI_COMM_WORLD, dir, NULL, &m));
    protect_nest(m, &d);
    CHECK(ckpt_phase(m, "setup") == 0); /* done before the stop */
    CHECK(ckpt_loop(m, "scan", 3, &j) == -1); /* the checkpoint was saved inside "sweep" */
    CHECK(ckpt_loop_status(m) == CKPT_MISMATCH);
    CHECK(strstr(ckpt_last_error(), "'scan'") != NULL);
    CHECK(ckpt_loop(m, "sweep", 3, &j) == -1);
    CHECK_OK(ckpt_close(&m));
  }
  nest_state c = {0, 0, 0};
  CHECK(run_nest(dir, &c, -1, first, last) == 0);
  /* resumed at the next inner step of the same sweep; setup and sweep 1's init not rerun */
  CHECK(first[0] == stopped_at[0] && first[1] == stopped_at[1] + 1);
  CHECK(c.sum == full && c.setups == 1 && c.inits == 3);

  /* ckpt_loop_break ends a loop as done; the restarted program skips it */
  ckpt_handle *h;
  int64_t i, n = 0, ran = 0;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, bdir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "n", CKPT_I64, &n, 0, NULL));
  for (int r = ckpt_loop(h, "a", 10, &i); r > 0; r = ckpt_loop_next(h, &i)) {
    if (i == 3) {
      CHECK_OK(ckpt_loop_break(h));
      break;
    }
    ++n;
  }
  for (int r = ckpt_phase(h, "b"); r > 0; r = ckpt_loop_next(h, NULL)) ++n;
  CHECK(n == 4);
  CHECK_OK(ckpt_save(h, ckpt_loop_step(h), 0)); /* C saves the end of a nest explicitly */
  CHECK_OK(ckpt_close(&h));
  n = 0;
  CHECK_OK(ckpt_open(MPI_COMM_WORLD, bdir, NULL, &h));
  CHECK_OK(ckpt_protect_replicated(h, "n", CKPT_I64, &n, 0, NULL));
  for (int r = ckpt_loop(h, "a", 10, &i); r > 0; r = ckpt_loop_next(h, &i)) ++ran;
  for (int r = ckpt_phase(h, "b"); r > 0; r = ckpt_loop_next(h, NULL)) ++ran;
  CHECK(ran == 0 && n == 4);
  CHECK_OK(ckpt_close(&h));

  CHECK(ckpt_loop(NULL, "x", 1, &i) == -1 && strstr(ckpt_last_error(), "NULL") != NULL);
}

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own HDF5 calls print nothing */
  unsetenv("CKPT_DIR");
  unsetenv("CKPT_EVERY");
  unsetenv("CKPT_SECONDS");
  unsetenv("CKPT_KEEP");
  if (rank == 0) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/ckpt-capi-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) base[0] = '\0';
  }
  MPI_Bcast(base, sizeof base, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!base[0]) {
    if (rank == 0) fprintf(stderr, "test_capi: cannot create a scratch directory\n");
    MPI_Finalize();
    return 1;
  }
  static const test_case tests[] = {
      {"names_and_version", test_names_and_version},
      {"open_close", test_open_close},
      {"open_errors", test_open_errors},
      {"null_handle", test_null_handle},
      {"roundtrip", test_roundtrip},
      {"metadata_errors", test_metadata_errors},
      {"protect_errors", test_protect_errors},
      {"protect_after_restore", test_protect_after_restore},
      {"mismatch_on_restore", test_mismatch_on_restore},
      {"unknown_version", test_unknown_version},
      {"corrupt", test_corrupt},
      {"step_policy", test_step_policy},
      {"request_stop", test_request_stop},
      {"signal_stop", test_signal_stop},
      {"ghost", test_ghost},
      {"grid", test_grid},
      {"reshard_and_rank_count", test_reshard_and_rank_count},
      {"env_dir_wins", test_env_dir_wins},
      {"async", test_async},
      {"async_stop_commit_failure", test_async_stop_commit_failure},
      {"nested_loops", test_nested_loops},
  };
  const char *only = argc > 1 ? argv[1] : NULL;
  int total_failed_tests = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
    if (only && strcmp(only, tests[i].name) != 0) continue;
    int before = failures, any;
    tests[i].fn();
    int mine = failures - before;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (any) ++total_failed_tests;
    if (rank == 0) printf("[%s] %s\n", any ? "FAILED" : "  OK  ", tests[i].name);
  }
  int all_checks;
  MPI_Reduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    if (!getenv("CKPT_TEST_KEEP")) nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d test(s) failed, %d checks on %d rank(s)\n", total_failed_tests, all_checks, size);
  }
  MPI_Finalize();
  return total_failed_tests ? 1 : 0;
}
