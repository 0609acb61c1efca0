/* LD_PRELOAD shim that makes the storage fail for ckpt's checkpoint files, as a briefly
 * failing file server does: open() and/or read() of files named ckpt-<step>.h5 fail with
 * EIO (or the errno given). Everything else passes through.
 *
 *   CKPT_TEST_EIO=open|read|open,read   which calls fail
 *   CKPT_TEST_EIO_RANK=N|*              only on this MPI rank (OMPI_COMM_WORLD_RANK or
 *                                       PMIX_RANK), default every rank
 *   CKPT_TEST_EIO_ERRNO=5               the errno (default EIO)
 *
 * Used by tests/faults/restore_eio.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 65536
static unsigned char tracked[MAX_FD]; /* fds opened on a checkpoint file */

static int active(const char *what) {
  const char *mode = getenv("CKPT_TEST_EIO");
  if (!mode || !strstr(mode, what))
    return 0;
  const char *want = getenv("CKPT_TEST_EIO_RANK");
  if (!want || strcmp(want, "*") == 0)
    return 1;
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  if (!r)
    r = getenv("PMIX_RANK");
  return r && strcmp(r, want) == 0;
}

static int fail_errno(void) {
  const char *e = getenv("CKPT_TEST_EIO_ERRNO");
  return e ? atoi(e) : EIO;
}

static int is_checkpoint(const char *path) {
  if (!path)
    return 0;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const size_t n = strlen(base);
  return strncmp(base, "ckpt-", 5) == 0 && n > 8 && strcmp(base + n - 3, ".h5") == 0;
}

static int track(int fd, const char *path) {
  if (fd >= 0 && fd < MAX_FD)
    tracked[fd] = (unsigned char)is_checkpoint(path);
  return fd;
}


static mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

/* An open of a checkpoint file that must fail: errno set, -1 to return. */
static int refuse_open(const char *path) {
  if (!is_checkpoint(path) || !active("open"))
    return 0;
  errno = fail_errno();
  return 1;
}

typedef int (*open_fn)(const char *, int, ...);

static int open_with(open_fn *real, const char *symbol, const char *path, int flags, mode_t m) {
  if (!*real)
    *real = (open_fn)dlsym(RTLD_NEXT, symbol);
  if (refuse_open(path))
    return -1;
  return track((*real)(path, flags, m), path);
}

int open(const char *path, int flags, ...) {
  static open_fn real;
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return open_with(&real, "open", path, flags, m);
}

int open64(const char *path, int flags, ...) {
  static open_fn real;
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return open_with(&real, "open64", path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...) {
  static int (*real)(int, const char *, int, ...);
  if (!real)
    real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  if (refuse_open(path))
    return -1;
  return track(real(dirfd, path, flags, m), path);
}

int close(int fd) {
  static int (*real)(int);
  if (!real)
    real = (int (*)(int))dlsym(RTLD_NEXT, "close");
  if (fd >= 0 && fd < MAX_FD)
    tracked[fd] = 0;
  return real(fd);
}

static int read_fails(int fd) {
  return fd >= 0 && fd < MAX_FD && tracked[fd] && active("read");
}

ssize_t read(int fd, void *buf, size_t n) {
  static ssize_t (*real)(int, void *, size_t);
  if (!real)
    real = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
  if (read_fails(fd)) {
    errno = fail_errno();
    return -1;
  }
  return real(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
  static ssize_t (*real)(int, void *, size_t, off_t);
  if (!real)
    real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
  if (read_fails(fd)) {
    errno = fail_errno();
    return -1;
  }
  return real(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
  static ssize_t (*real)(int, void *, size_t, off_t);
  if (!real)
    real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
  if (read_fails(fd)) {
    errno = fail_errno();
    return -1;
  }
  return real(fd, buf, n, off);
}
