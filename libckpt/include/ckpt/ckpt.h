/* ckpt: coordinated checkpoint/restart for MPI simulations, C API.
 *
 * A C99 layer over the C++ core (ckpt::Checkpointer). Every call returns a status code
 * (CKPT_OK or the ckpt::Errc value of the failure); ckpt_last_error() gives the message of
 * the last failure on the calling thread. No C++ exception crosses this API.
 *
 * Quick start (the 6 calls that make a solver restartable):
 *
 *   ckpt_handle *ck;
 *   int restored, stop = 0;
 *   int64_t step;
 *   ckpt_open(MPI_COMM_WORLD, "run", &(ckpt_options){.every = 100}, &ck);
 *   ckpt_protect_distributed(ck, "x", CKPT_F64, x, 2, global, offset, count);
 *   ckpt_protect_replicated(ck, "h", CKPT_F64, &h, 0, NULL);
 *   ckpt_restore(ck, &restored, &step);                 // step = 0 when nothing to restore
 *   for (; step < nsteps && !stop;) {
 *     advance(x, &h);
 *     ++step;
 *     ckpt_step(ck, step, t, &stop);                    // checkpoints per policy
 *   }
 *   ckpt_close(&ck);
 *   return stop ? CKPT_EXIT_MORE_WORK : 0;
 *
 * Collective calls must be made by every rank of the communicator given to ckpt_open, in
 * the same order, and all ranks must protect the same fields in the same order. An error
 * inside a collective call is agreed on: every rank gets the same status. Local calls
 * (protect_*, metadata, request_stop, exit_code, last_error, status_name, version) involve
 * no communication.
 *
 * Options come from ckpt_options (ckpt_options_init fills the defaults) and from the CKPT_*
 * environment variables, which win over the values set in code (CKPT_DIR, CKPT_EVERY,
 * CKPT_SECONDS, CKPT_KEEP, CKPT_QUIET, CKPT_MODE, CKPT_SIGNALS, CKPT_MARGIN,
 * CKPT_MAX_RESTARTS, CKPT_MTBF, CKPT_LOCAL_DIR, CKPT_FLUSH_EVERY; see docs/c-api.md).
 *
 * Thread safety: a handle must be used by one thread at a time. ckpt_last_error() is
 * per thread.
 */
#ifndef CKPT_CKPT_H
#define CKPT_CKPT_H

#include <mpi.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status of a call. The values equal ckpt::Errc and never change. */
typedef enum ckpt_status {
  CKPT_OK = 0,
  CKPT_INVALID_ARGUMENT = 1,    /**< bad name, shape, option, null pointer or call order */
  CKPT_IO = 2,                  /**< file system error (open, write, fsync, rename) */
  CKPT_NO_SPACE = 3,            /**< the file system is full */
  CKPT_HDF5 = 4,                /**< the HDF5 library reported an error */
  CKPT_MPI = 5,                 /**< an MPI call failed */
  CKPT_CORRUPT = 6,             /**< checksum mismatch, truncated or unreadable checkpoint */
  CKPT_UNSUPPORTED_VERSION = 7, /**< checkpoint written by an unknown major format version */
  CKPT_MISMATCH = 8,            /**< dtype, shape or kind of a field differs from the checkpoint */
  CKPT_RANK_COUNT = 9,          /**< per-rank state saved on a different number of ranks */
  CKPT_MISSING_FIELD = 10,      /**< a protected field is absent from the checkpoint */
  CKPT_NO_VALID_CHECKPOINT = 11,/**< checkpoints exist but none could be restored */
  CKPT_LOCKED = 12,             /**< another job holds the checkpoint directory */
  CKPT_REMOTE = 13,             /**< failure reported by another rank without a code */
  CKPT_INTERNAL = 14,           /**< a bug in ckpt, or out of memory */
  CKPT_RESTART_LIMIT = 15       /**< the job was restarted more often than allowed */
} ckpt_status;

/** Element type of protected data. The values equal ckpt::Dtype and never change. */
typedef enum ckpt_dtype {
  CKPT_U8 = 0,
  CKPT_I8 = 1,
  CKPT_U16 = 2,
  CKPT_I16 = 3,
  CKPT_U32 = 4,
  CKPT_I32 = 5,
  CKPT_U64 = 6,
  CKPT_I64 = 7,
  CKPT_F32 = 8,
  CKPT_F64 = 9
} ckpt_dtype;

/** How a checkpoint is written: CKPT_MODE_SYNC returns when it is durable, CKPT_MODE_ASYNC
 * after copying the state to staging memory (the write completes in the background). */
typedef enum ckpt_mode { CKPT_MODE_SYNC = 0, CKPT_MODE_ASYNC = 1 } ckpt_mode;

/** Exit status of a program that stopped early after a durable checkpoint and has more work
 * left (EX_TEMPFAIL). ckpt's SLURM helper requeues the job on it. */
#define CKPT_EXIT_MORE_WORK 75

/** Maximum number of signals in ckpt_options.signals. */
#define CKPT_MAX_SIGNALS 8

/** Settings of a checkpointer. All-zero means the defaults, so a C99 compound literal
 * sets just what it needs: `&(ckpt_options){.every = 100}`. */
typedef struct ckpt_options {
  const char *dir;        /**< checkpoint directory, created if missing (NULL: "checkpoints") */
  int64_t every;          /**< checkpoint every N steps (0: not by step count) */
  int every_auto;         /**< nonzero: choose the interval from cost and mtbf_seconds */
  double seconds;         /**< checkpoint when this many seconds passed (0: not by time) */
  int keep;               /**< keep the newest K checkpoints (0: 3; -1: keep all) */
  int quiet;              /**< nonzero: no log line per checkpoint */
  ckpt_mode mode;         /**< CKPT_MODE_SYNC (0) or CKPT_MODE_ASYNC */
  int nsignals;           /**< entries of `signals` used (0: SIGUSR1 and SIGTERM; -1: none) */
  int signals[CKPT_MAX_SIGNALS]; /**< signals that request "checkpoint and stop" */
  double margin_seconds;  /**< stop when less job time than this is left (0: derived) */
  int max_restarts;       /**< refuse to run after this many SLURM restarts (0: no cap) */
  double mtbf_seconds;    /**< mean time between failures for every_auto (0: 86400) */
  const char *local_dir;  /**< node-local storage for checkpoints, with partner copies (NULL: none) */
  int flush_every;        /**< with local_dir: flush every K-th checkpoint to dir (0: at a stop and the end) */
} ckpt_options;

/** Opaque checkpointer. */
typedef struct ckpt_handle ckpt_handle;

/** Sets `opts` to the defaults (all zero). Local. */
void ckpt_options_init(ckpt_options *opts);

/** Opens a checkpointer on `comm` (duplicated; the caller's communicator is never freed),
 * creates the directory and installs the stop-signal handlers.
 * \param dir   checkpoint directory; NULL takes opts->dir. CKPT_DIR wins over both.
 * \param opts  options, or NULL for the defaults.
 * \param out   receives the handle (NULL on failure).
 * \return CKPT_IO when the directory cannot be created or written, CKPT_INVALID_ARGUMENT
 *   for a bad option or CKPT_* variable, CKPT_RESTART_LIMIT.
 * Collective over comm. */
ckpt_status ckpt_open(MPI_Comm comm, const char *dir, const ckpt_options *opts,
                      ckpt_handle **out);

/** Protects this rank's block of a distributed array of `ndims` dimensions, stored at its
 * global shape so that it can be restored on any number of ranks. The block is contiguous
 * in memory (C order, shape `count`).
 * \param global, offset, count  arrays of `ndims` extents, slowest dimension first.
 * \return CKPT_INVALID_ARGUMENT for a bad name, a block outside the global shape, a name
 *   already protected, or a call after ckpt_restore.
 * Local. */
ckpt_status ckpt_protect_distributed(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                     void *data, int ndims, const uint64_t *global,
                                     const uint64_t *offset, const uint64_t *count);

/** Like ckpt_protect_distributed, for a block inside a larger local allocation (ghost
 * cells): `memory` is the shape of the allocation and `memory_offset` the position of the
 * block in it, e.g. memory {ny+2, nx+2}, memory_offset {1, 1}. Local. */
ckpt_status ckpt_protect_distributed_ghost(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                           void *data, int ndims, const uint64_t *global,
                                           const uint64_t *offset, const uint64_t *count,
                                           const uint64_t *memory,
                                           const uint64_t *memory_offset);

/** Tags the protected distributed field `name` (1 to 3 dimensions) with the regular grid it
 * is sampled on: each later checkpoint then carries a VTKHDF image view of it that ParaView
 * (reader "VTKHDF") opens directly, made of links to the saved data (no copy).
 * \param origin, spacing  `ndims` numbers each, slowest dimension first like `global`
 *   (NULL: origin 0, spacing 1); `ndims` must equal the field's.
 * \return CKPT_INVALID_ARGUMENT for an unknown or non-distributed field, a wrong `ndims`,
 *   or a spacing that is not > 0. Fields tagged in one handle must share one global shape
 *   and grid (checked by the next save). Local. */
ckpt_status ckpt_grid(ckpt_handle *h, const char *name, int ndims, const double *origin,
                      const double *spacing);

/** Protects a value that is the same on every rank (step size, parameters); stored once.
 * `ndims` 0 (and `shape` NULL) means a scalar. Local. */
ckpt_status ckpt_protect_replicated(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                    void *data, int ndims, const uint64_t *shape);

/** Protects a value of fixed shape that differs per rank (RNG state). Restoring it on a
 * different number of ranks fails with CKPT_RANK_COUNT. Local. */
ckpt_status ckpt_protect_per_rank(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                  void *data, int ndims, const uint64_t *shape);

/** Stores a key/value pair as a root attribute of every later checkpoint. Local. */
ckpt_status ckpt_metadata(ckpt_handle *h, const char *key, const char *value);

/** Loads the newest valid checkpoint of the directory into the protected buffers. Corrupt or
 * incomplete checkpoints are skipped (with a logged reason) for older ones.
 * \param restored  receives 1 when a checkpoint was loaded, 0 when there was none (may be NULL).
 * \param step      receives the restored step, or 0 when there was none (may be NULL).
 * \return CKPT_MISMATCH when a field's size, dtype or kind differs from the checkpoint,
 *   CKPT_MISSING_FIELD, CKPT_RANK_COUNT, CKPT_UNSUPPORTED_VERSION,
 *   CKPT_NO_VALID_CHECKPOINT (buffers may then be overwritten), CKPT_INVALID_ARGUMENT when
 *   called twice. After a restore no more fields can be protected.
 * Collective. */
ckpt_status ckpt_restore(ckpt_handle *h, int *restored, int64_t *step);

/** The per-step call: after `step` completed steps, checkpoints when the policy says so
 * (every N steps, every T seconds, a stop signal, the job time limit near) and tells
 * whether the program should leave its loop.
 * \param time  simulation time stored with a checkpoint.
 * \param stop  receives 1 when a stop was requested (signal, time limit, ckpt_request_stop)
 *   and the checkpoint of `step` is committed and durable (in async mode ckpt_step waits
 *   for the background write and the commit first); the program should then leave its
 *   loop and exit with CKPT_EXIT_MORE_WORK. Else 0. May be NULL. A stop seen on any rank
 *   is reported on every rank at the same step, at most one step after it arrived (the
 *   ranks agree without blocking). When that checkpoint fails, the error is returned and
 *   *stop stays 0 (ckpt_exit_code is then not CKPT_EXIT_MORE_WORK).
 * Collective. */
ckpt_status ckpt_step(ckpt_handle *h, int64_t step, double time, int *stop);

/** Whether to checkpoint after `step` completed steps (the policy of ckpt_step without the
 * save). All ranks get the same answer. Collective. */
ckpt_status ckpt_should_checkpoint(ckpt_handle *h, int64_t step, int *yes);

/** Writes a checkpoint of the protected fields at `step`, now. Returns when it is committed
 * (durable in sync mode). The previous checkpoint is never damaged by a failure. Collective. */
ckpt_status ckpt_save(ckpt_handle *h, int64_t step, double time);

/** Asks for "checkpoint and stop" at the next ckpt_step. Local; async-signal-safe. */
ckpt_status ckpt_request_stop(ckpt_handle *h);

/** Nested loops and phases, the C form of C++'s Checkpointer::loop and phase (see
 * docs/c-api.md): the position in the nest (each running loop's index, the loops and
 * phases done in its current iteration) is saved with every checkpoint, and a restarted
 * program re-enters the outer loops at the saved indices and the inner loop at the saved
 * step, skipping the phases that were done.
 *
 *   int64_t sweep, t;
 *   for (int r = ckpt_phase(ck, "setup"); r > 0; r = ckpt_loop_next(ck, NULL))
 *     make_particles();
 *   for (int r = ckpt_loop(ck, "sweep", 8, &sweep); r > 0; r = ckpt_loop_next(ck, &sweep))
 *     for (int q = ckpt_loop(ck, "t", 10000, &t); q > 0; q = ckpt_loop_next(ck, &t))
 *       advance(x);
 *   if (ckpt_loop_status(ck) != CKPT_OK) fprintf(stderr, "%s\n", ckpt_last_error());
 *   return ckpt_exit_code(ck);                            // 75 after a stop
 *
 * Do not call ckpt_restore: the first ckpt_loop or ckpt_phase restores (protect the fields
 * first). An iteration that enters no nested loop or phase is one step; the policy is asked
 * after each (ckpt_loop_step counts them). A stop (signal, time limit, ckpt_request_stop)
 * checkpoints at the next step boundary and ends every loop of the nest: the calls return
 * 0 and ckpt_exit_code is CKPT_EXIT_MORE_WORK. As with ckpt_step, the end is not saved by
 * itself: call ckpt_save(h, ckpt_loop_step(h), t) after the nest (its position is saved
 * with it). Call ckpt_loop_break before a `break`.
 * \return 1: run the iteration (*index receives its index); 0: the loop is over (done,
 *   done before the restored checkpoint, or a stop ended the nest); -1: an error ended the
 *   nest (its status is ckpt_loop_status, its message ckpt_last_error; every later loop
 *   call returns -1).
 * Collective. */
int ckpt_loop(ckpt_handle *h, const char *name, int64_t n, int64_t *index);
/** A named phase: a loop of one iteration (see ckpt_loop), skipped after a restart once it
 * was done. Collective. */
int ckpt_phase(ckpt_handle *h, const char *name);
/** Ends the current iteration of the innermost running loop or phase (the step boundary
 * when it entered no nested loop) and moves to the next. `index` may be NULL. Returns as
 * ckpt_loop. Collective. */
int ckpt_loop_next(ckpt_handle *h, int64_t *index);
/** Leaves the innermost running loop early, recording it as done; call it right before
 * `break`. Local. */
ckpt_status ckpt_loop_break(ckpt_handle *h);
/** The error that ended the nest (CKPT_OK when none). Local. */
ckpt_status ckpt_loop_status(const ckpt_handle *h);
/** Steps counted by the loops and phases so far, restored ones included. Local. */
int64_t ckpt_loop_step(const ckpt_handle *h);

/** 0, or CKPT_EXIT_MORE_WORK once ckpt_step reported a stop. Local. */
int ckpt_exit_code(const ckpt_handle *h);

/** Commits the last pending (async) checkpoint, frees the handle and sets *h to NULL. A
 * NULL *h is a no-op. Returns the error of a failed write or commit (the handle is freed
 * all the same; the previous checkpoint is intact). Collective. */
ckpt_status ckpt_close(ckpt_handle **h);

/** Message of the last failed call on this thread ("" when none failed), e.g.
 * "ckpt[rank 3] restore: field 'x' has global shape [72,3] in run/ckpt-000000000100.h5 ...".
 * Valid until the next failing call on this thread. Local. */
const char *ckpt_last_error(void);

/** Short stable name of a status, e.g. "mismatch". Local. */
const char *ckpt_status_name(ckpt_status status);

/** Library version, e.g. "0.1.0". Local. */
const char *ckpt_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_CKPT_H */
