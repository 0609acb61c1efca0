// The C API (ckpt/ckpt.h): a thin layer over ckpt::Checkpointer. Every entry point catches
// everything, so no C++ exception ever reaches a C caller; the message of the failure is
// kept per thread for ckpt_last_error().

#include <ckpt/ckpt.h>

#include <ckpt/checkpointer.hpp>
#include <ckpt/error.hpp>
#include <ckpt/options.hpp>
#include <ckpt/types.hpp>

#include <ckpt/signals.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// The C enums are the C++ enums by value: a status is the ckpt::Errc of the failure.
#define CKPT_SAME(c, cpp) static_assert(static_cast<int>(c) == static_cast<int>(cpp), #c)
CKPT_SAME(CKPT_OK, ckpt::Errc::ok);
CKPT_SAME(CKPT_INVALID_ARGUMENT, ckpt::Errc::invalid_argument);
CKPT_SAME(CKPT_IO, ckpt::Errc::io);
CKPT_SAME(CKPT_NO_SPACE, ckpt::Errc::no_space);
CKPT_SAME(CKPT_HDF5, ckpt::Errc::hdf5);
CKPT_SAME(CKPT_MPI, ckpt::Errc::mpi);
CKPT_SAME(CKPT_CORRUPT, ckpt::Errc::corrupt);
CKPT_SAME(CKPT_UNSUPPORTED_VERSION, ckpt::Errc::unsupported_version);
CKPT_SAME(CKPT_MISMATCH, ckpt::Errc::mismatch);
CKPT_SAME(CKPT_RANK_COUNT, ckpt::Errc::rank_count);
CKPT_SAME(CKPT_MISSING_FIELD, ckpt::Errc::missing_field);
CKPT_SAME(CKPT_NO_VALID_CHECKPOINT, ckpt::Errc::no_valid_checkpoint);
CKPT_SAME(CKPT_LOCKED, ckpt::Errc::locked);
CKPT_SAME(CKPT_REMOTE, ckpt::Errc::remote);
CKPT_SAME(CKPT_INTERNAL, ckpt::Errc::internal);
CKPT_SAME(CKPT_RESTART_LIMIT, ckpt::Errc::restart_limit);
CKPT_SAME(CKPT_U8, ckpt::Dtype::u8);
CKPT_SAME(CKPT_I8, ckpt::Dtype::i8);
CKPT_SAME(CKPT_U16, ckpt::Dtype::u16);
CKPT_SAME(CKPT_I16, ckpt::Dtype::i16);
CKPT_SAME(CKPT_U32, ckpt::Dtype::u32);
CKPT_SAME(CKPT_I32, ckpt::Dtype::i32);
CKPT_SAME(CKPT_U64, ckpt::Dtype::u64);
CKPT_SAME(CKPT_I64, ckpt::Dtype::i64);
CKPT_SAME(CKPT_F32, ckpt::Dtype::f32);
CKPT_SAME(CKPT_F64, ckpt::Dtype::f64);
CKPT_SAME(CKPT_MODE_SYNC, ckpt::Mode::sync);
CKPT_SAME(CKPT_MODE_ASYNC, ckpt::Mode::async);
CKPT_SAME(CKPT_EXIT_MORE_WORK, ckpt::exit_more_work);
#undef CKPT_SAME

struct ckpt_handle {
  ckpt_handle(MPI_Comm comm, ckpt::Options o) : cp(comm, std::move(o)) {}
  ~ckpt_handle() { clear_nest(); }
  ckpt::Checkpointer cp;
  bool restore_called = false; // fields can no longer be protected
  bool stopped = false;        // ckpt_step or a loop reported a stop
  // ckpt_loop / ckpt_phase: the running levels of the C++ loop nest, innermost last.
  struct Level {
    std::unique_ptr<ckpt::LoopRange> range;
    std::optional<ckpt::LoopRange::iterator> it;
  };
  std::vector<Level> nest;
  ckpt_status nest_error = CKPT_OK;
  void clear_nest() {
    while (!nest.empty())
      nest.pop_back(); // innermost first
  }
};

namespace {

constexpr int max_dims = 32;

thread_local std::string last_error;

void set_error(const char *msg) noexcept {
  try {
    last_error = msg;
  } catch (...) {
    last_error.clear(); // no memory for the message: an empty one beats none
  }
}

// Status and message of the exception being handled. Call only inside a catch block.
ckpt_status translate() noexcept {
  try {
    throw;
  } catch (const ckpt::Error &e) {
    set_error(e.what());
    return static_cast<ckpt_status>(e.code());
  } catch (const std::bad_alloc &) {
    set_error("ckpt: out of memory");
  } catch (const std::exception &e) {
    set_error(e.what());
  } catch (...) {
    set_error("ckpt: unknown exception");
  }
  return CKPT_INTERNAL;
}

// A failure found by this layer, before the core is called. The message has the core's
// shape: "ckpt[rank N] <call>: <what> (<what to do>)".
ckpt_status fail(const ckpt_handle *h, const char *call, const std::string &what) noexcept {
  try {
    std::string prefix = h ? "ckpt[rank " + std::to_string(h->cp.rank()) + "] " : "ckpt: ";
    set_error((prefix + call + ": " + what).c_str());
  } catch (...) {
    set_error("ckpt: invalid argument");
  }
  return CKPT_INVALID_ARGUMENT;
}

bool valid_dtype(ckpt_dtype t) {
  return static_cast<int>(t) >= CKPT_U8 && static_cast<int>(t) <= CKPT_F64;
}

// Checks a shape argument of `ndims` extents and copies it; writes the failure reason.
bool to_shape(int ndims, const uint64_t *dims, const char *what, ckpt::Shape &out,
              std::string &why) {
  if (ndims < 0 || ndims > max_dims) {
    why = "ndims " + std::to_string(ndims) + " is outside 0.." + std::to_string(max_dims);
    return false;
  }
  if (ndims > 0 && dims == nullptr) {
    why = std::string(what) + " is NULL with ndims " + std::to_string(ndims);
    return false;
  }
  out.assign(dims, dims + ndims);
  return true;
}

// Common checks of the protect calls.
ckpt_status check_protect(const ckpt_handle *h, const char *call, const char *name,
                          ckpt_dtype dtype) {
  if (!h) return fail(h, call, "handle is NULL (open it with ckpt_open)");
  if (!name) return fail(h, call, "name is NULL");
  if (h->restore_called)
    return fail(h, call,
                std::string("field '") + name +
                    "' protected after ckpt_restore (protect every field before restoring)");
  if (!valid_dtype(dtype))
    return fail(h, call, "dtype " + std::to_string(static_cast<int>(dtype)) +
                             " is not a ckpt_dtype");
  return CKPT_OK;
}

ckpt_status protect_distributed(ckpt_handle *h, const char *call, const char *name,
                                ckpt_dtype dtype, void *data, int ndims, const uint64_t *global,
                                const uint64_t *offset, const uint64_t *count,
                                const uint64_t *memory, const uint64_t *memory_offset,
                                bool ghost) {
  if (ckpt_status s = check_protect(h, call, name, dtype)) return s;
  ckpt::Block b;
  std::string why;
  if (!to_shape(ndims, global, "global", b.global, why) ||
      !to_shape(ndims, offset, "offset", b.offset, why) ||
      !to_shape(ndims, count, "count", b.count, why) ||
      (ghost && (!to_shape(ndims, memory, "memory", b.memory, why) ||
                 !to_shape(ndims, memory_offset, "memory_offset", b.memory_offset, why))))
    return fail(h, call, std::string("field '") + name + "': " + why);
  if (!data && ckpt::volume(b.count) != 0)
    return fail(h, call, std::string("field '") + name + "': data is NULL");
  h->cp.distributed(name, static_cast<ckpt::Dtype>(dtype), data, b);
  return CKPT_OK;
}

ckpt_status protect_value(ckpt_handle *h, const char *call, const char *name, ckpt_dtype dtype,
                          void *data, int ndims, const uint64_t *shape, bool replicated) {
  if (ckpt_status s = check_protect(h, call, name, dtype)) return s;
  ckpt::Shape sh;
  std::string why;
  if (!to_shape(ndims, shape, "shape", sh, why))
    return fail(h, call, std::string("field '") + name + "': " + why);
  if (!data && ckpt::volume(sh) != 0)
    return fail(h, call, std::string("field '") + name + "': data is NULL");
  if (replicated)
    h->cp.replicated(name, static_cast<ckpt::Dtype>(dtype), data, sh);
  else
    h->cp.per_rank(name, static_cast<ckpt::Dtype>(dtype), data, sh);
  return CKPT_OK;
}

} // namespace

extern "C" {

void ckpt_options_init(ckpt_options *opts) {
  if (opts) *opts = ckpt_options{};
}

ckpt_status ckpt_open(MPI_Comm comm, const char *dir, const ckpt_options *opts,
                      ckpt_handle **out) {
  try {
    const char *call = "open";
    if (!out) return fail(nullptr, call, "out is NULL");
    *out = nullptr;
    ckpt::Options o;  // the C++ defaults; zero fields of *opts keep them
    o.final = false;  // a C loop has no known last step: ckpt_save saves at the end
    if (opts) {
      if (opts->dir) o.dir = opts->dir;
      o.every = opts->every;
      o.every_auto = opts->every_auto != 0;
      o.seconds = opts->seconds;
      if (opts->keep < -1)
        return fail(nullptr, call, "keep " + std::to_string(opts->keep) +
                                       " is negative (-1 keeps all, 0 the default)");
      if (opts->keep != 0) o.keep = opts->keep == -1 ? 0 : opts->keep;
      o.quiet = opts->quiet != 0;
      if (opts->mode != CKPT_MODE_SYNC && opts->mode != CKPT_MODE_ASYNC)
        return fail(nullptr, call, "mode " + std::to_string(static_cast<int>(opts->mode)) +
                                       " is neither CKPT_MODE_SYNC nor CKPT_MODE_ASYNC");
      o.mode = static_cast<ckpt::Mode>(opts->mode);
      if (opts->nsignals > CKPT_MAX_SIGNALS || opts->nsignals < -1)
        return fail(nullptr, call, "nsignals " + std::to_string(opts->nsignals) +
                                       " is outside -1.." + std::to_string(CKPT_MAX_SIGNALS));
      if (opts->nsignals == -1) o.signals.clear();
      if (opts->nsignals > 0) o.signals.assign(opts->signals, opts->signals + opts->nsignals);
      o.margin_seconds = opts->margin_seconds;
      o.max_restarts = opts->max_restarts;
      if (opts->mtbf_seconds != 0) o.mtbf_seconds = opts->mtbf_seconds;
      if (opts->local_dir) o.local_dir = opts->local_dir;
      if (opts->flush_every < 0)
        return fail(nullptr, call, "flush_every " + std::to_string(opts->flush_every) + " is negative");
      o.flush_every = opts->flush_every;
    }
    if (dir) o.dir = dir;
    if (o.dir.empty())
      return fail(nullptr, call, "the checkpoint directory is an empty string (give a path)");
    *out = new ckpt_handle(comm, std::move(o));
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_protect_distributed(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                     void *data, int ndims, const uint64_t *global,
                                     const uint64_t *offset, const uint64_t *count) {
  try {
    return protect_distributed(h, "protect_distributed", name, dtype, data, ndims, global,
                               offset, count, nullptr, nullptr, false);
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_protect_distributed_ghost(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                           void *data, int ndims, const uint64_t *global,
                                           const uint64_t *offset, const uint64_t *count,
                                           const uint64_t *memory,
                                           const uint64_t *memory_offset) {
  try {
    return protect_distributed(h, "protect_distributed_ghost", name, dtype, data, ndims,
                               global, offset, count, memory, memory_offset, true);
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_grid(ckpt_handle *h, const char *name, int ndims, const double *origin,
                      const double *spacing) {
  try {
    const char *call = "grid";
    if (!h) return fail(h, call, "handle is NULL (open it with ckpt_open)");
    if (!name) return fail(h, call, "name is NULL");
    if (ndims < 1 || ndims > 3)
      return fail(h, call, "ndims " + std::to_string(ndims) + " is outside 1..3");
    // NULL arrays become `ndims` defaults, so FieldSet::grid checks `ndims` in every case.
    ckpt::Grid g;
    if (origin) g.origin.assign(origin, origin + ndims);
    else g.origin.assign(static_cast<std::size_t>(ndims), 0.0);
    if (spacing) g.spacing.assign(spacing, spacing + ndims);
    else g.spacing.assign(static_cast<std::size_t>(ndims), 1.0);
    h->cp.grid(name, g);
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_protect_replicated(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                    void *data, int ndims, const uint64_t *shape) {
  try {
    return protect_value(h, "protect_replicated", name, dtype, data, ndims, shape, true);
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_protect_per_rank(ckpt_handle *h, const char *name, ckpt_dtype dtype,
                                  void *data, int ndims, const uint64_t *shape) {
  try {
    return protect_value(h, "protect_per_rank", name, dtype, data, ndims, shape, false);
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_metadata(ckpt_handle *h, const char *key, const char *value) {
  try {
    if (!h) return fail(h, "metadata", "handle is NULL (open it with ckpt_open)");
    if (!key || !value) return fail(h, "metadata", "key or value is NULL");
    h->cp.metadata(key, value);
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_restore(ckpt_handle *h, int *restored, int64_t *step) {
  try {
    if (restored) *restored = 0;
    if (step) *step = 0;
    if (!h) return fail(h, "restore", "handle is NULL (open it with ckpt_open)");
    if (h->restore_called)
      return fail(h, "restore", "called twice (restore once, after protecting every field)");
    h->restore_called = true;
    std::optional<std::int64_t> s = h->cp.restore();
    if (s) {
      if (restored) *restored = 1;
      if (step) *step = *s;
    }
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_should_checkpoint(ckpt_handle *h, int64_t step, int *yes) {
  try {
    if (yes) *yes = 0;
    if (!h) return fail(h, "should_checkpoint", "handle is NULL (open it with ckpt_open)");
    bool y = h->cp.should_checkpoint(step);
    if (yes) *yes = y ? 1 : 0;
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_save(ckpt_handle *h, int64_t step, double time) {
  try {
    if (!h) return fail(h, "save", "handle is NULL (open it with ckpt_open)");
    h->cp.save(step, time);
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_step(ckpt_handle *h, int64_t step, double time, int *stop) {
  try {
    if (stop) *stop = 0;
    if (!h) return fail(h, "step", "handle is NULL (open it with ckpt_open)");
    h->cp.set_time(time);
    // The core's after-step routine: policy, save, and on a stop a durable commit before
    // *stop is set; a failed save or commit is returned instead.
    const ckpt::StopReason r = h->cp.after_step(step);
    if (r != ckpt::StopReason::none && r != ckpt::StopReason::finished) {
      h->stopped = true;
      if (stop) *stop = 1;
    }
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_request_stop(ckpt_handle *h) {
  if (!h) return CKPT_INVALID_ARGUMENT; // no message: this call is async-signal-safe
  h->cp.request_stop();
  return CKPT_OK;
}

namespace {

// The first iteration of a loop or phase just made by `make` (collective).
int enter_level(ckpt_handle *h, const char *call, int64_t *index,
                const std::function<ckpt::LoopRange *()> &make) noexcept {
  if (!h) {
    fail(h, call, "handle is NULL (open it with ckpt_open)");
    return -1;
  }
  if (h->nest_error != CKPT_OK)
    return -1;
  if (h->stopped)
    return 0;
  try {
    h->restore_called = true; // the first top-level loop restores
    std::unique_ptr<ckpt::LoopRange> range(make());
    auto it = range->begin();
    if (it == range->end())
      return 0;
    if (index) *index = *it;
    h->nest.push_back({std::move(range), it});
    return 1;
  } catch (...) {
    h->nest_error = translate();
    h->clear_nest();
    return -1;
  }
}

} // namespace

int ckpt_loop(ckpt_handle *h, const char *name, int64_t n, int64_t *index) {
  if (h && !name) {
    fail(h, "loop", "name is NULL");
    return -1;
  }
  return enter_level(h, "loop", index, [&] { return new ckpt::LoopRange(h->cp.loop(name, n)); });
}

int ckpt_phase(ckpt_handle *h, const char *name) {
  if (h && !name) {
    fail(h, "phase", "name is NULL");
    return -1;
  }
  return enter_level(h, "phase", nullptr, [&] { return new ckpt::LoopRange(h->cp.phase(name)); });
}

int ckpt_loop_next(ckpt_handle *h, int64_t *index) {
  if (!h) {
    fail(h, "loop_next", "handle is NULL (open it with ckpt_open)");
    return -1;
  }
  if (h->nest_error != CKPT_OK)
    return -1;
  if (h->stopped)
    return 0; // a stop ended the whole nest
  if (h->nest.empty()) {
    fail(h, "loop_next", "no loop or phase is running (start one with ckpt_loop or ckpt_phase)");
    return -1;
  }
  auto &level = h->nest.back();
  try {
    ++*level.it;
    if (*level.it == level.range->end()) {
      h->nest.pop_back();
      return 0;
    }
    if (index) *index = **level.it;
    return 1;
  } catch (const ckpt::Stopped &) {
    h->stopped = true; // the checkpoint is durable
    h->clear_nest();
    return 0;
  } catch (...) {
    h->nest_error = translate();
    h->clear_nest();
    return -1;
  }
}

ckpt_status ckpt_loop_break(ckpt_handle *h) {
  if (!h) return fail(h, "loop_break", "handle is NULL (open it with ckpt_open)");
  if (h->nest.empty()) return fail(h, "loop_break", "no loop or phase is running");
  try {
    h->nest.pop_back(); // the C++ range's destructor records the loop as done
    return CKPT_OK;
  } catch (...) {
    return translate();
  }
}

ckpt_status ckpt_loop_status(const ckpt_handle *h) { return h ? h->nest_error : CKPT_INVALID_ARGUMENT; }

int64_t ckpt_loop_step(const ckpt_handle *h) { return h ? h->cp.loop_step() : 0; }

int ckpt_exit_code(const ckpt_handle *h) { return h && h->stopped ? CKPT_EXIT_MORE_WORK : 0; }

ckpt_status ckpt_close(ckpt_handle **h) {
  if (!h || !*h) return CKPT_OK;
  ckpt_handle *p = *h;
  *h = nullptr;
  ckpt_status status = CKPT_OK;
  try {
    p->cp.wait(); // the last async checkpoint: committed and durable, or its error returned
  } catch (...) {
    status = translate();
    p->stopped = false; // its checkpoint is not durable: not "checkpointed, requeue me"
  }
  try {
    delete p;
  } catch (...) {
    if (status == CKPT_OK) status = translate();
  }
  return status;
}

const char *ckpt_last_error(void) { return last_error.c_str(); }

const char *ckpt_status_name(ckpt_status status) {
  int s = static_cast<int>(status);
  if (s < CKPT_OK || s > CKPT_RESTART_LIMIT) return "unknown";
  return ckpt::errc_name(static_cast<ckpt::Errc>(s));
}

const char *ckpt_version(void) { return ckpt::library_version(); }

} // extern "C"
