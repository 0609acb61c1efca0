// ckpt._ckpt: the pybind11 layer over the C++ core.
//
// Thin on purpose: the Python package (python/ckpt/) turns user state into fields and
// calls this module to register numpy buffers (zero-copy), save and restore. Every
// collective call releases the GIL. mpi4py communicators are borrowed (PyMPIComm_Get),
// never freed; the core duplicates them.

#include <ckpt/catalog.hpp>
#include <ckpt/checkpointer.hpp>
#include <ckpt/error.hpp>
#include <ckpt/options.hpp>
#include <ckpt/types.hpp>

#include <mpi.h>
#include <mpi4py/mpi4py.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <ckpt/signals.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

MPI_Comm to_comm(py::handle obj) {
  if (!PyObject_TypeCheck(obj.ptr(), &PyMPIComm_Type))
    throw py::type_error("ckpt: comm must be an mpi4py.MPI.Comm (e.g. MPI.COMM_WORLD), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  MPI_Comm *p = PyMPIComm_Get(obj.ptr());
  if (p == nullptr)
    throw py::error_already_set();
  if (*p == MPI_COMM_NULL)
    throw py::value_error("ckpt: comm is MPI.COMM_NULL");
  return *p;
}

ckpt::Dtype to_dtype(const py::dtype &dt, const std::string &name) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  const char order = dt.byteorder();
  if (order == '>')
    throw py::value_error("ckpt: field '" + name + "': big-endian arrays are not supported");
  if (kind == 'u' || kind == 'b') {
    switch (size) {
    case 1: return ckpt::Dtype::u8;
    case 2: return ckpt::Dtype::u16;
    case 4: return ckpt::Dtype::u32;
    case 8: return ckpt::Dtype::u64;
    }
  } else if (kind == 'i') {
    switch (size) {
    case 1: return ckpt::Dtype::i8;
    case 2: return ckpt::Dtype::i16;
    case 4: return ckpt::Dtype::i32;
    case 8: return ckpt::Dtype::i64;
    }
  } else if (kind == 'f') {
    if (size == 4)
      return ckpt::Dtype::f32;
    if (size == 8)
      return ckpt::Dtype::f64;
  }
  throw py::value_error("ckpt: field '" + name + "': unsupported dtype " +
                        std::string(py::str(static_cast<const py::handle &>(dt))));
}

ckpt::Shape to_shape(const py::array &a) {
  ckpt::Shape s;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    s.push_back(static_cast<std::uint64_t>(a.shape(i)));
  return s;
}

// Read-only arrays may be saved; the Python layer only restores into writeable ones.
void *buffer_of(const py::array &a, const std::string &name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("ckpt: field '" + name + "': array must be C-contiguous");
  return const_cast<void *>(a.data());
}

py::dict block_dict(const ckpt::BlockInfo &b) {
  py::dict d;
  d["rank"] = b.rank;
  d["offset"] = py::tuple(py::cast(b.offset));
  d["count"] = py::tuple(py::cast(b.count));
  d["local_shape"] = py::tuple(py::cast(b.local_shape));
  d["checksum"] = b.checksum;
  return d;
}

py::dict info_dict(const ckpt::CheckpointInfo &info) {
  py::dict d;
  d["path"] = info.path.string();
  d["format"] = info.format;
  d["format_major"] = info.format_major;
  d["format_minor"] = info.format_minor;
  d["library_version"] = info.library_version;
  d["step"] = info.step;
  d["time"] = info.time;
  d["nranks"] = info.nranks;
  d["created"] = info.created;
  d["checksum_algorithm"] = info.checksum_algorithm;
  d["metadata"] = py::cast(info.metadata);
  d["file_bytes"] = info.file_bytes;
  py::list fields;
  for (const auto &f : info.fields) {
    py::dict fd;
    fd["name"] = f.name;
    fd["kind"] = std::string(ckpt::kind_name(f.kind));
    fd["dtype"] = std::string(ckpt::dtype_name(f.dtype));
    fd["shape"] = py::tuple(py::cast(f.shape));
    py::list blocks;
    for (const auto &b : f.blocks)
      blocks.append(block_dict(b));
    fd["blocks"] = blocks;
    fields.append(fd);
  }
  d["fields"] = fields;
  return d;
}

// This rank's block of a distributed array from the Python arguments.
ckpt::Block block_of(const std::string &name, const py::array &a, const ckpt::Shape &global,
                     const ckpt::Shape &offset, const std::optional<ckpt::Shape> &count,
                     const std::optional<ckpt::Shape> &memory_offset) {
  ckpt::Block b;
  b.global = global;
  b.offset = offset;
  if (memory_offset) {
    b.memory = to_shape(a);
    b.memory_offset = *memory_offset;
    if (!count)
      throw py::value_error("ckpt: field '" + name + "': count is needed with memory_offset");
    b.count = *count;
  } else {
    b.count = count ? *count : to_shape(a);
  }
  return b;
}

// A ckpt::FieldSet of numpy arrays, kept alive while the set lives.
struct PyFieldSet {
  ckpt::FieldSet set;
  std::vector<py::object> refs;

  void distributed(const std::string &name, const py::array &a, const ckpt::Shape &global,
                   const ckpt::Shape &offset, std::optional<ckpt::Shape> count,
                   std::optional<ckpt::Shape> memory_offset) {
    set.distributed(name, to_dtype(a.dtype(), name), buffer_of(a, name),
                    block_of(name, a, global, offset, count, memory_offset));
    refs.push_back(a);
  }
  void grid(const std::string &name, std::vector<double> origin, std::vector<double> spacing) {
    set.grid(name, ckpt::Grid{std::move(origin), std::move(spacing)});
  }
  void replicated(const std::string &name, const py::array &a) {
    set.replicated(name, to_dtype(a.dtype(), name), buffer_of(a, name), to_shape(a));
    refs.push_back(a);
  }
  void per_rank(const std::string &name, const py::array &a) {
    set.per_rank(name, to_dtype(a.dtype(), name), buffer_of(a, name), to_shape(a));
    refs.push_back(a);
  }
};

/// The core Checkpointer plus references to every registered buffer, so numpy memory
/// outlives the registration.
class PyCheckpointer {
public:
  PyCheckpointer(py::handle comm, const std::string &dir, std::int64_t every, bool every_auto,
                 double seconds, std::optional<int> keep, std::optional<bool> quiet,
                 std::optional<bool> final_save, std::optional<std::vector<int>> signals,
                 std::optional<std::string> mode, std::optional<std::string> local_dir,
                 std::optional<int> flush_every) {
    MPI_Comm c = to_comm(comm);
    ckpt::Options o;
    o.dir = dir;
    o.every = every;
    o.every_auto = every_auto;
    o.seconds = seconds;
    if (keep)
      o.keep = *keep;
    if (quiet)
      o.quiet = *quiet;
    if (final_save)
      o.final = *final_save;
    if (signals)
      o.signals = *signals;
    if (mode) {
      if (*mode == "sync")
        o.mode = ckpt::Mode::sync;
      else if (*mode == "async")
        o.mode = ckpt::Mode::async;
      else
        throw py::value_error("ckpt: mode must be 'sync' or 'async', got '" + *mode + "'");
    }
    if (local_dir)
      o.local_dir = *local_dir;
    if (flush_every)
      o.flush_every = *flush_every;
    py::gil_scoped_release nogil;
    cp_ = std::make_unique<ckpt::Checkpointer>(c, o);
  }

  ~PyCheckpointer() { close(); }

  void close() {
    if (!cp_)
      return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
      // MPI is gone: MPI_Finalize already closed the session (its last save committed, see
      // libckpt/src/checkpointer.cpp); the little that is left is not freed.
      (void)cp_.release();
    } else {
      py::gil_scoped_release nogil;
      cp_.reset();
    }
    refs_.clear();
  }

  ckpt::Checkpointer &cp() {
    if (!cp_)
      throw py::value_error("ckpt: the Checkpointer is closed");
    return *cp_;
  }

  void distributed(const std::string &name, const py::array &a, const ckpt::Shape &global,
                   const ckpt::Shape &offset, std::optional<ckpt::Shape> count,
                   std::optional<ckpt::Shape> memory_offset) {
    cp().distributed(name, to_dtype(a.dtype(), name), buffer_of(a, name),
                     block_of(name, a, global, offset, count, memory_offset));
    refs_.push_back(a);
  }

  void grid(const std::string &name, std::vector<double> origin, std::vector<double> spacing) {
    cp().grid(name, ckpt::Grid{std::move(origin), std::move(spacing)});
  }

  void replicated(const std::string &name, const py::array &a) {
    cp().replicated(name, to_dtype(a.dtype(), name), buffer_of(a, name), to_shape(a));
    refs_.push_back(a);
  }

  void per_rank(const std::string &name, const py::array &a) {
    cp().per_rank(name, to_dtype(a.dtype(), name), buffer_of(a, name), to_shape(a));
    refs_.push_back(a);
  }

  // With `fields`, the set handed to this call; else the registered fields.
  std::optional<std::int64_t> restore(const PyFieldSet *fields) {
    auto &c = cp();
    py::gil_scoped_release nogil;
    return fields ? c.restore(fields->set) : c.restore();
  }

  std::int64_t restore_from(const std::string &file, const PyFieldSet *fields) {
    auto &c = cp();
    py::gil_scoped_release nogil;
    return fields ? c.restore_from(fields->set, file) : c.restore_from(file);
  }

  std::int64_t read_from(const std::string &file, const PyFieldSet &fields) {
    auto &c = cp();
    py::gil_scoped_release nogil;
    return c.read_from(fields.set, file);
  }

  void save(std::int64_t step, double time, const PyFieldSet *fields) {
    auto &c = cp();
    py::gil_scoped_release nogil;
    // Async: the data is copied into staging memory before save returns, so the arrays of
    // `fields` may change (or be freed) right after.
    if (fields)
      c.save(fields->set, step, time);
    else
      c.save(step, time);
  }

  void wait() {
    if (!cp_)
      return; // closed: nothing pending
    py::gil_scoped_release nogil;
    cp_->wait();
  }

  bool should_checkpoint(std::int64_t step) {
    auto &c = cp();
    py::gil_scoped_release nogil;
    return c.should_checkpoint(step);
  }

  void clear_fields() {
    cp().clear_fields();
    refs_.clear(); // an async save in flight has its own copy of the data
  }

  // Called after every step: a plain py::object (no conversion to py::function) keeps the
  // boundary that does nothing cheap.
  std::string after_step(std::int64_t done, bool last, const py::object &save_fn) {
    auto &c = cp();
    std::function<void(std::int64_t)> f;
    if (!save_fn.is_none())
      f = [&save_fn](std::int64_t s) {
        py::gil_scoped_acquire gil;
        save_fn(s);
      };
    py::gil_scoped_release nogil;
    return ckpt::stop_reason_name(c.after_step(done, last, f));
  }

  py::dict stats() {
    const auto &s = cp().stats();
    py::dict d;
    d["saves"] = s.saves;
    d["bytes"] = s.bytes;
    d["seconds"] = s.seconds;
    d["last_seconds"] = s.last_seconds;
    d["last_bytes"] = s.last_bytes;
    d["last_step"] = s.last_step;
    return d;
  }

  py::dict options() {
    const auto &o = cp().options();
    py::dict d;
    d["dir"] = o.dir;
    d["every"] = o.every;
    d["every_auto"] = o.every_auto;
    d["seconds"] = o.seconds;
    d["keep"] = o.keep;
    d["quiet"] = o.quiet;
    d["final"] = o.final;
    d["mode"] = o.mode == ckpt::Mode::async ? "async" : "sync";
    d["signals"] = o.signals;
    d["margin_seconds"] = o.margin_seconds;
    d["max_restarts"] = o.max_restarts;
    d["local_dir"] = o.local_dir;
    d["flush_every"] = o.flush_every;
    return d;
  }

private:
  std::unique_ptr<ckpt::Checkpointer> cp_;
  std::vector<py::object> refs_;
};

py::object checkpoint_error_type() {
  return py::module_::import("ckpt._errors").attr("CheckpointError");
}

std::string xxh3_128_hex(const void *data, std::size_t len) {
  XXH128_hash_t h;
  {
    py::gil_scoped_release nogil;
    h = XXH3_128bits(data, len);
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(buf, 32);
}

} // namespace

PYBIND11_MODULE(_ckpt, m) {
  m.doc() = "Low-level bindings of the ckpt C++ core. Use the `ckpt` package instead.";
  if (import_mpi4py() < 0)
    throw py::error_already_set();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const ckpt::Error &e) {
      py::object cls = checkpoint_error_type();
      py::object err = cls(std::string(e.what()), std::string(ckpt::errc_name(e.code())),
                           static_cast<int>(e.code()), e.rank(), e.detail());
      PyErr_SetObject(cls.ptr(), err.ptr());
    }
  });

  py::class_<PyFieldSet>(m, "FieldSet",
                         "The arrays one save writes or one restore reads into (keeps them alive).")
      .def(py::init<>())
      .def("distributed", &PyFieldSet::distributed, py::arg("name"), py::arg("array"),
           py::arg("global_shape"), py::arg("offset"), py::arg("count") = py::none(),
           py::arg("memory_offset") = py::none())
      .def("grid", &PyFieldSet::grid, py::arg("name"), py::arg("origin"), py::arg("spacing"),
           "Tags a distributed field with its grid (empty lists: origin 0, spacing 1).")
      .def("replicated", &PyFieldSet::replicated, py::arg("name"), py::arg("array"))
      .def("per_rank", &PyFieldSet::per_rank, py::arg("name"), py::arg("array"))
      .def("__len__", [](const PyFieldSet &f) { return f.set.size(); });

  py::class_<PyCheckpointer>(m, "Checkpointer")
      .def(py::init<py::handle, const std::string &, std::int64_t, bool, double, std::optional<int>,
                    std::optional<bool>, std::optional<bool>, std::optional<std::vector<int>>,
                    std::optional<std::string>, std::optional<std::string>, std::optional<int>>(),
           py::arg("comm"), py::arg("dir"), py::arg("every") = 0, py::arg("every_auto") = false,
           py::arg("seconds") = 0.0, py::arg("keep") = py::none(), py::arg("quiet") = py::none(),
           py::arg("final") = py::none(), py::arg("signals") = py::none(),
           py::arg("mode") = py::none(), py::arg("local_dir") = py::none(), py::arg("flush_every") = py::none(),
           "Collective over comm. Duplicates comm; the CKPT_* environment is applied.")
      .def("close", &PyCheckpointer::close, "Frees the core object (collective over comm).")
      .def("distributed", &PyCheckpointer::distributed, py::arg("name"), py::arg("array"),
           py::arg("global_shape"), py::arg("offset"), py::arg("count") = py::none(),
           py::arg("memory_offset") = py::none())
      .def("grid", &PyCheckpointer::grid, py::arg("name"), py::arg("origin"), py::arg("spacing"),
           "Tags a registered distributed field with its grid.")
      .def("replicated", &PyCheckpointer::replicated, py::arg("name"), py::arg("array"))
      .def("per_rank", &PyCheckpointer::per_rank, py::arg("name"), py::arg("array"))
      .def("metadata", [](PyCheckpointer &s, const std::string &k,
                          const std::string &v) { s.cp().metadata(k, v); })
      .def("restore", &PyCheckpointer::restore, py::arg("fields") = nullptr,
           "Restores the newest valid checkpoint into `fields` (a FieldSet) or the registered "
           "fields; collective.")
      .def("restore_from", &PyCheckpointer::restore_from, py::arg("file"), py::arg("fields") = nullptr)
      .def("read_from", &PyCheckpointer::read_from, py::arg("file"), py::arg("fields"),
           "Reads `fields` from one file, verified, without making it the restored checkpoint.")
      .def("save", &PyCheckpointer::save, py::arg("step"), py::arg("time") = 0.0,
           py::arg("fields") = nullptr,
           "Saves `fields` (a FieldSet handed to this save) or the registered fields; collective.")
      .def("wait", &PyCheckpointer::wait,
           "Makes the last (async) save durable and committed; collective.")
      .def("should_checkpoint", &PyCheckpointer::should_checkpoint, py::arg("step"))
      .def("clear_fields", &PyCheckpointer::clear_fields,
           "Drops the registered fields (local): the next save or restore uses a new set.")
      .def("after_step", &PyCheckpointer::after_step, py::arg("done"), py::arg("last") = false,
           py::arg("save") = py::none(),
           "The core's step boundary (collective): policy, save (by save(done) when given), and "
           "on a stop or at the last step a durable commit; returns the stop reason name.")
      .def_property_readonly("saved_step",
                             [](PyCheckpointer &s) { return s.cp().saved_step(); },
                             "The step of the last save (committed, or staged when async) or restore, or None.")
      .def_property_readonly("pending_step",
                             [](PyCheckpointer &s) { return s.cp().pending_step(); },
                             "Step of an async save not yet committed (its write may still run).")
      .def("request_stop", [](PyCheckpointer &s) { s.cp().request_stop(); })
      .def("set_time", [](PyCheckpointer &s, double t) { s.cp().set_time(t); })
      .def_property_readonly("stopped", [](PyCheckpointer &s) {
        return std::string(ckpt::stop_reason_name(s.cp().stopped()));
      })
      .def_property_readonly("exit_code", [](PyCheckpointer &s) { return s.cp().exit_code(); })
      .def_property_readonly("restored_step",
                             [](PyCheckpointer &s) { return s.cp().restored_step(); })
      .def_property_readonly("rank", [](PyCheckpointer &s) { return s.cp().rank(); })
      .def_property_readonly("size", [](PyCheckpointer &s) { return s.cp().size(); })
      .def("stats", &PyCheckpointer::stats)
      .def("options", &PyCheckpointer::options);

  m.def("list_checkpoints", [](const std::string &dir) {
    std::vector<std::pair<std::int64_t, std::string>> out;
    for (const auto &e : ckpt::list_checkpoints(dir))
      out.emplace_back(e.step, e.path.string());
    return out;
  }, py::arg("dir"), "Committed checkpoints in dir, newest first, as (step, path). Local.");
  m.def("inspect", [](const std::string &file) {
    ckpt::CheckpointInfo info;
    {
      py::gil_scoped_release nogil;
      info = ckpt::inspect(file);
    }
    return info_dict(info);
  }, py::arg("file"), "Root attributes and fields of a checkpoint file (no data). Local.");
  m.def("verify", [](const std::string &file) {
    ckpt::VerifyReport r;
    {
      py::gil_scoped_release nogil;
      r = ckpt::verify(file);
    }
    py::dict d;
    d["ok"] = r.ok;
    d["reason"] = r.reason;
    d["blocks_checked"] = r.blocks_checked;
    d["bytes_checked"] = r.bytes_checked;
    return d;
  }, py::arg("file"), "Reads every block and checks its checksum. Local.");
  m.def(
      "restore_newest",
      [](py::handle comm, const std::string &dir, py::function restore_one, std::optional<bool> fresh,
         std::optional<std::string> local_dir) {
        // restore_one raises CheckpointError; the core's fallback decides on its code.
        auto fn = [&](const std::string &file) -> std::int64_t {
          try {
            return restore_one(file).cast<std::int64_t>();
          } catch (py::error_already_set &e) {
            if (e.matches(checkpoint_error_type())) {
              py::object v = e.value();
              throw ckpt::Error(static_cast<ckpt::Errc>(v.attr("code_value").cast<int>()),
                                v.attr("rank").cast<int>(), v.attr("detail").cast<std::string>());
            }
            throw;
          }
        };
        return ckpt::restore_newest(to_comm(comm), dir, fn, fresh, local_dir);
      },
      py::arg("comm"), py::arg("dir"), py::arg("restore_one"), py::arg("fresh") = py::none(),
      py::arg("local_dir") = py::none(),
      "Collective. Calls restore_one(file) on the checkpoints of dir, newest first, with the "
      "core's fallback rules (damage is set aside, I/O errors are raised, CKPT_FRESH); with "
      "node-local storage (local_dir, default CKPT_LOCAL_DIR) a newer checkpoint rebuilt from "
      "the node-local parts is written into dir first. The restored step or None.");
  m.def("checkpoint_file_name", &ckpt::checkpoint_file_name, py::arg("step"));
  m.def("read_latest", [](const std::string &dir) { return ckpt::read_latest(dir); },
        py::arg("dir"));
  m.def("library_version", [] { return std::string(ckpt::library_version()); });
  m.def("xxh3_128", [](py::buffer b) {
    py::buffer_info info = b.request();
    bool contiguous = true;
    py::ssize_t expect = info.itemsize;
    for (py::ssize_t i = info.ndim - 1; i >= 0; --i) {
      if (info.shape[i] > 1 && info.strides[i] != expect)
        contiguous = false;
      expect *= info.shape[i];
    }
    if (!contiguous)
      throw py::value_error("ckpt.xxh3_128: buffer must be C-contiguous");
    return xxh3_128_hex(info.ptr, static_cast<std::size_t>(info.size * info.itemsize));
  }, py::arg("data"),
        "XXH3-128 of the bytes of a C-contiguous buffer, as 32 hex digits (high64, low64).");
  m.attr("EXIT_MORE_WORK") = ckpt::exit_more_work;
}
