// ckpt-bench: checkpoint cost side by side with the limits of this machine, in one run.
//
// For each state size (total over all ranks) it runs every method once per round, rounds
// interleaved (A B C ... A B C ...), and reports medians: this machine's disk speed drifts
// by 2x between minutes, so only methods measured next to each other are compared.
//
//   direct     plain pwrite of the same bytes with O_DIRECT from aligned memory, fsync
//   buffered   plain pwrite of the same bytes from the state, fsync
//   phdf5      hand-written collective parallel HDF5 write (contiguous, early allocation,
//              no fill, 1 MiB alignment, collective transfer), close, fsync
//   sync       ckpt save, Mode::sync (committed and durable when it returns)
//   async      ckpt save, Mode::async: `blocked` is the time save() took, `durable` the
//              time until wait() returned (committed and durable)
//   memcpy     copy of the state into pre-faulted memory (the limit of copy snapshots)
//   restore    ckpt restore of the sync checkpoint (page cache dropped for the file first)
//   read       plain pread of the same bytes (buffered and O_DIRECT, the better), cache dropped
//
// Run under mpiexec -n N; every rank holds total/N bytes as a distributed 1-D float64 field.
#include <ckpt/ckpt.hpp>

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <hdf5.h>
#include <map>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

int g_rank = 0, g_size = 1;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "ckpt-bench[rank %d]: %s\n", g_rank, msg.c_str());
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

std::uint64_t parse_size(const std::string &s) {
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string u = end ? end : "";
  double m = 1;
  if (u == "K" || u == "KiB" || u == "k")
    m = 1024;
  else if (u == "M" || u == "MiB")
    m = 1024.0 * 1024;
  else if (u == "G" || u == "GiB")
    m = 1024.0 * 1024 * 1024;
  else if (!u.empty())
    die("bad size '" + s + "' (use e.g. 1M, 256M, 2G)");
  return static_cast<std::uint64_t>(v * m);
}

std::string human(std::uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.3g GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.3g MiB", b / double(1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%.3g KiB", b / 1024.0);
  return buf;
}

void appendf(std::string &out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string &out, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    out.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

double max_all(double v) {
  double r = 0;
  MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return r;
}

double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Peak resident memory since the last reset (VmHWM), in bytes; reset with clear_refs 5.
std::uint64_t status_kib(const char *key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0)
      return std::strtoull(line.c_str() + std::strlen(key), nullptr, 10);
  return 0;
}
void reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

void drop_cache(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void pwrite_all(int fd, const void *p, std::uint64_t n, std::uint64_t off) {
  const char *c = static_cast<const char *>(p);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, c, std::min<std::uint64_t>(n, 1u << 30), static_cast<off_t>(off));
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      die(std::string("pwrite: ") + std::strerror(errno));
    }
    c += w;
    n -= static_cast<std::uint64_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
}
void pread_all(int fd, void *p, std::uint64_t n, std::uint64_t off) {
  char *c = static_cast<char *>(p);
  while (n > 0) {
    ssize_t r = ::pread(fd, c, std::min<std::uint64_t>(n, 1u << 30), static_cast<off_t>(off));
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      die(std::string("pread: ") + std::strerror(errno));
    }
    c += r;
    n -= static_cast<std::uint64_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
}

void *aligned_buffer(std::uint64_t bytes) {
  void *p = ::mmap(nullptr, std::max<std::uint64_t>(bytes, 4096), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED)
    die("out of memory");
  return p;
}

struct Args {
  std::vector<std::uint64_t> sizes;
  int repeats = 3;
  std::string dir = "/tmp/ckpt-bench";
  bool json = false;
  std::string json_out; // also write the JSON to this file
  bool heat = true;
  int heat_n = 100, heat_steps = 2000, heat_every = 100;
};

struct Result {
  std::uint64_t total = 0;
  std::map<std::string, std::vector<double>> t; // method -> seconds per round
  double sync_extra_mib = NAN, async_extra_mib = NAN, maxrss_mib = 0;
  std::uint64_t file_bytes = 0; // size of the sync checkpoint file on disk (rank 0)
};

// ------------------------------------------------------------------------------------------

Result run_size(const Args &a, std::uint64_t total) {
  Result res;
  const std::uint64_t align = 4096 * static_cast<std::uint64_t>(g_size);
  total = std::max<std::uint64_t>(total / align * align, align); // whole pages per rank
  res.total = total;
  const std::uint64_t share = total / static_cast<std::uint64_t>(g_size);
  const std::uint64_t count = share / 8, gcount = total / 8;
  const std::uint64_t off = static_cast<std::uint64_t>(g_rank) * share;

  // The state: an ordinary std::vector, as in an application.
  std::vector<double> state(count);
  for (std::uint64_t i = 0; i < count; ++i)
    state[i] = std::sin(double(i + off / 8)) * 1e3;
  void *aligned = aligned_buffer(share);
  std::memcpy(aligned, state.data(), share);
  void *copy = aligned_buffer(share);
  std::vector<double> back(count);

  const fs::path dir = a.dir;
  const std::string plain = (dir / "plain.bin").string(), h5 = (dir / "phdf5.h5").string();
  const fs::path sync_dir = dir / "sync", async_dir = dir / "async";
  if (g_rank == 0) {
    fs::remove_all(sync_dir);
    fs::remove_all(async_dir);
    fs::create_directories(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  auto options = [&](const fs::path &d, ckpt::Mode m) {
    ckpt::Options o;
    o.dir = d.string();
    o.keep = 1;
    o.quiet = true;
    o.final = false;
    o.signals = {};
    o.mode = m;
    return o;
  };
  const ckpt::Block block{.global = {gcount}, .offset = {off / 8}, .count = {count}};
  std::int64_t step = 0;

  // Warm-up saves (allocate the sync ring and the async staging once, as a long run does)
  // with the extra peak memory each needs.
  const double rss0 = double(status_kib("VmRSS:"));
  reset_peak();
  auto sync_cp = std::make_unique<ckpt::Checkpointer>(MPI_COMM_WORLD, options(sync_dir, ckpt::Mode::sync));
  sync_cp->distributed("x", state.data(), block);
  sync_cp->save(++step);
  res.sync_extra_mib = max_all((double(status_kib("VmHWM:")) - rss0) / 1024.0);
  if (g_rank == 0)
    for (const auto &e : fs::directory_iterator(sync_dir))
      if (e.path().extension() == ".h5")
        res.file_bytes = std::max<std::uint64_t>(res.file_bytes, e.file_size());
  const double rss1 = double(status_kib("VmRSS:"));
  reset_peak();
  auto async_cp = std::make_unique<ckpt::Checkpointer>(MPI_COMM_WORLD, options(async_dir, ckpt::Mode::async));
  async_cp->distributed("x", state.data(), block);
  async_cp->save(++step);
  async_cp->wait();
  res.async_extra_mib = max_all((double(status_kib("VmHWM:")) - rss1) / 1024.0);

  auto timed = [&](const std::function<void()> &body) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = now();
    body();
    const double mine = now() - t0;
    return max_all(mine);
  };
  auto plain_write = [&](bool direct) {
    if (g_rank == 0)
      ::unlink(plain.c_str());
    MPI_Barrier(MPI_COMM_WORLD);
    return timed([&] {
      int fd = ::open(plain.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
      if (fd < 0)
        die("open " + plain + ": " + std::strerror(errno));
      pwrite_all(fd, direct ? aligned : static_cast<const void *>(state.data()), share, off);
      if (::fsync(fd) != 0)
        die(std::string("fsync: ") + std::strerror(errno));
      ::close(fd);
    });
  };
  auto phdf5_write = [&] {
    if (g_rank == 0)
      ::unlink(h5.c_str());
    MPI_Barrier(MPI_COMM_WORLD);
    return timed([&] {
      hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
      H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
      H5Pset_alignment(fapl, 1 << 20, 1 << 20);
      hid_t f = H5Fcreate(h5.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
      hsize_t g = gcount, o = off / 8, c = count;
      hid_t space = H5Screate_simple(1, &g, nullptr);
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_layout(dcpl, H5D_CONTIGUOUS);
      H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
      hid_t ds = H5Dcreate2(f, "x", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      hid_t fsel = H5Dget_space(ds);
      H5Sselect_hyperslab(fsel, H5S_SELECT_SET, &o, nullptr, &c, nullptr);
      hid_t msel = H5Screate_simple(1, &c, nullptr);
      hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
      H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
      if (H5Dwrite(ds, H5T_NATIVE_DOUBLE, msel, fsel, dxpl, state.data()) < 0)
        die("H5Dwrite failed");
      H5Pclose(dxpl);
      H5Sclose(msel);
      H5Sclose(fsel);
      H5Dclose(ds);
      H5Pclose(dcpl);
      H5Sclose(space);
      H5Fclose(f);
      H5Pclose(fapl);
      int fd = ::open(h5.c_str(), O_RDONLY);
      ::fsync(fd);
      ::close(fd);
    });
  };
  auto plain_read = [&](bool direct) {
    if (g_rank == 0)
      drop_cache(plain);
    MPI_Barrier(MPI_COMM_WORLD);
    return timed([&] {
      int fd = ::open(plain.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
      if (fd < 0)
        die("open " + plain + ": " + std::strerror(errno));
      pread_all(fd, direct ? copy : static_cast<void *>(back.data()), share, off);
      ::close(fd);
    });
  };

  for (int r = 0; r < a.repeats; ++r) {
    res.t["direct"].push_back(plain_write(true));
    res.t["buffered"].push_back(plain_write(false));
    res.t["phdf5"].push_back(phdf5_write());
    res.t["sync"].push_back(timed([&] { sync_cp->save(++step); }));
    {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = now();
      async_cp->save(++step);
      const double blocked = now() - t0;
      async_cp->wait();
      const double durable = now() - t0;
      res.t["async_blocked"].push_back(max_all(blocked));
      res.t["async_durable"].push_back(max_all(durable));
    }
    res.t["memcpy"].push_back(timed([&] { std::memcpy(copy, state.data(), share); }));
    {
      std::string latest;
      if (g_rank == 0) {
        std::ifstream lf(sync_dir / "LATEST");
        std::getline(lf, latest);
        drop_cache((sync_dir / latest).string());
      }
      std::fill(state.begin(), state.end(), 0.0);
      res.t["restore"].push_back(timed([&] { sync_cp->restore(); }));
    }
    res.t["read_buffered"].push_back(plain_read(false));
    res.t["read_direct"].push_back(plain_read(true));
    // The restored state must equal what was saved.
    bool ok = true;
    for (std::uint64_t i = 0; i < count && ok; i += 4097)
      ok = state[i] == std::sin(double(i + off / 8)) * 1e3;
    int all_ok = 0, mine = ok ? 1 : 0;
    MPI_Allreduce(&mine, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
      die("restored state differs from the saved one");
  }
  async_cp.reset();
  sync_cp.reset();
  ::munmap(aligned, std::max<std::uint64_t>(share, 4096));
  ::munmap(copy, std::max<std::uint64_t>(share, 4096));
  if (g_rank == 0) {
    ::unlink(plain.c_str());
    ::unlink(h5.c_str());
    fs::remove_all(sync_dir);
    fs::remove_all(async_dir);
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  res.maxrss_mib = max_all(double(ru.ru_maxrss) / 1024.0);
  MPI_Barrier(MPI_COMM_WORLD);
  return res;
}

// ------------------------------------------------------------------------------------------
// heat: 2-D Jacobi on an n x n grid split in rows, async checkpoints every K steps. Times
// every iteration; a checkpointing iteration is one whose loop step saved.

struct HeatResult {
  double normal = NAN, ckpt = NAN, after = NAN, mean_all = NAN, mean_plain = NAN;
};

HeatResult run_heat(const Args &a, const std::string &mode_name, ckpt::Mode mode) {
  const std::uint64_t n = static_cast<std::uint64_t>(a.heat_n);
  const std::uint64_t rows = n / static_cast<std::uint64_t>(g_size) +
                             (static_cast<std::uint64_t>(g_rank) < n % static_cast<std::uint64_t>(g_size) ? 1 : 0);
  std::uint64_t y0 = 0;
  {
    std::uint64_t r = rows;
    MPI_Exscan(&r, &y0, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
      y0 = 0;
  }
  const std::uint64_t W = n + 2, H = rows + 2;
  std::vector<double> u(H * W, 0.0), v(H * W, 0.0);
  for (std::uint64_t x = 0; x < W; ++x) {
    if (g_rank == 0)
      u[x] = v[x] = 40.0;
    if (g_rank == g_size - 1)
      u[(H - 1) * W + x] = v[(H - 1) * W + x] = -273.15;
  }
  for (std::uint64_t y = 0; y < H; ++y)
    u[y * W] = v[y * W] = u[y * W + W - 1] = v[y * W + W - 1] = -273.15;
  const int up = g_rank > 0 ? g_rank - 1 : MPI_PROC_NULL, down = g_rank < g_size - 1 ? g_rank + 1 : MPI_PROC_NULL;
  auto iterate = [&] {
    MPI_Sendrecv(&u[W], int(W), MPI_DOUBLE, up, 0, &u[(H - 1) * W], int(W), MPI_DOUBLE, down, 0, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    MPI_Sendrecv(&u[(H - 2) * W], int(W), MPI_DOUBLE, down, 1, &u[0], int(W), MPI_DOUBLE, up, 1, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    for (std::uint64_t y = 1; y <= rows; ++y)
      for (std::uint64_t x = 1; x <= n; ++x)
        v[y * W + x] = 0.2 * (u[y * W + x] + u[(y - 1) * W + x] + u[y * W + x + 1] + u[y * W + x - 1] + u[(y + 1) * W + x]);
    // u stays where it was registered: the new interior is copied back.
    std::memcpy(&u[W], &v[W], rows * W * sizeof(double));
  };

  HeatResult hr;
  const fs::path d = fs::path(a.dir) / ("heat-" + mode_name);
  if (g_rank == 0)
    fs::remove_all(d);
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<double> plain_t;
  for (int s = 0; s < a.heat_steps; ++s) { // the same loop without ckpt
    const double t0 = now();
    iterate();
    plain_t.push_back(now() - t0);
  }
  {
    ckpt::Options o;
    o.dir = d.string();
    o.every = a.heat_every;
    o.keep = 2;
    o.quiet = true;
    o.final = false;
    o.signals = {};
    o.mode = mode;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.distributed("u", u.data(), {.global = {n, n}, .offset = {y0, 0}, .count = {rows, n}, .memory = {H, W},
                                   .memory_offset = {1, 1}});
    std::vector<double> normal, saving, after;
    bool prev_saved = false;
    for (std::int64_t s = 0; s < a.heat_steps; ++s) {
      const double t0 = now();
      iterate();
      bool saved = false;
      if (cp.should_checkpoint(s + 1)) {
        cp.save(s + 1);
        saved = true;
      }
      const double dt = now() - t0;
      (saved ? saving : prev_saved ? after : normal).push_back(dt);
      prev_saved = saved;
    }
    cp.wait();
    double all = 0;
    for (double x : normal)
      all += x;
    for (double x : saving)
      all += x;
    for (double x : after)
      all += x;
    hr.normal = max_all(median(normal));
    hr.ckpt = max_all(median(saving));
    hr.after = max_all(median(after));
    hr.mean_all = max_all(all / double(a.heat_steps));
  }
  double ps = 0;
  for (double x : plain_t)
    ps += x;
  hr.mean_plain = max_all(ps / double(plain_t.size()));
  if (g_rank == 0)
    fs::remove_all(d);
  return hr;
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  Args a;
  std::string sizes = "1M,16M,256M,1G,2G";
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value for " + k);
      return argv[++i];
    };
    if (k == "--sizes")
      sizes = val();
    else if (k == "--repeats")
      a.repeats = std::max(1, std::atoi(val().c_str()));
    else if (k == "--dir")
      a.dir = val();
    else if (k == "--json")
      a.json = true;
    else if (k == "--json-out")
      a.json_out = val();
    else if (k == "--no-heat")
      a.heat = false;
    else if (k == "--heat-n")
      a.heat_n = std::atoi(val().c_str());
    else if (k == "--heat-steps")
      a.heat_steps = std::atoi(val().c_str());
    else if (k == "--heat-every")
      a.heat_every = std::atoi(val().c_str());
    else if (k == "--quick")
      sizes = "1M,8M", a.repeats = 2, a.heat_steps = 200, a.heat_every = 50;
    else if (k == "--help" || k == "-h") {
      if (g_rank == 0)
        std::printf("usage: mpiexec -n N ckpt-bench [--sizes 1M,16M,256M,1G,2G] [--repeats 3] [--dir /tmp/ckpt-bench]\n"
                    "                  [--json] [--json-out FILE] [--quick] [--no-heat] [--heat-n 100] [--heat-steps 2000] [--heat-every 100]\n"
                    "Sizes are totals over all ranks. Files go to --dir and are deleted at the end.\n");
      MPI_Finalize();
      return 0;
    } else
      die("unknown option " + k + " (see --help)");
  }
  for (std::size_t p = 0; p <= sizes.size();) {
    auto q = sizes.find(',', p);
    if (q == std::string::npos)
      q = sizes.size();
    if (q > p)
      a.sizes.push_back(parse_size(sizes.substr(p, q - p)));
    p = q + 1;
  }
  setenv("CKPT_QUIET", "1", 0);

  std::vector<Result> results;
  for (auto s : a.sizes) {
    results.push_back(run_size(a, s));
    if (g_rank == 0 && !a.json)
      std::fprintf(stderr, "ckpt-bench: %s done\n", human(results.back().total).c_str());
  }
  HeatResult heat_async, heat_sync;
  if (a.heat) {
    heat_async = run_heat(a, "async", ckpt::Mode::async);
    heat_sync = run_heat(a, "sync", ckpt::Mode::sync);
  }
  if (g_rank == 0) {
    std::error_code ec;
    fs::remove(a.dir, ec);
  }

  if (g_rank == 0) {
    auto med = [](const Result &r, const char *k) { return median(r.t.at(k)); };
    if (a.json || !a.json_out.empty()) {
      std::string js;
      appendf(js, "{\"ranks\":%d,\"repeats\":%d,\"sizes\":[", g_size, a.repeats);
      for (std::size_t i = 0; i < results.size(); ++i) {
        const Result &r = results[i];
        appendf(js, "%s{\"bytes\":%llu", i ? "," : "", static_cast<unsigned long long>(r.total));
        for (const auto &[k, v] : r.t) {
          appendf(js, ",\"%s\":{\"median_s\":%.6g,\"gbps\":%.4g,\"runs\":[", k.c_str(), median(v), r.total / median(v) / 1e9);
          for (std::size_t j = 0; j < v.size(); ++j)
            appendf(js, "%s%.6g", j ? "," : "", v[j]);
          appendf(js, "]}");
        }
        const double limit = std::min(med(r, "direct"), med(r, "buffered"));
        const double rlimit = std::min(med(r, "read_buffered"), med(r, "read_direct"));
        appendf(js, ",\"ratios\":{\"sync_vs_plain\":%.4g,\"sync_vs_phdf5\":%.4g,\"async_blocked_vs_memcpy\":%.4g,"
                    "\"async_blocked_vs_sync\":%.4g,\"restore_vs_read\":%.4g}",
                    limit / med(r, "sync"), med(r, "phdf5") / med(r, "sync"), med(r, "async_blocked") / med(r, "memcpy"),
                    med(r, "async_blocked") / med(r, "sync"), rlimit / med(r, "restore"));
        appendf(js, ",\"peak_extra_mib\":{\"sync\":%.1f,\"async\":%.1f},\"maxrss_mib\":%.1f,\"file_bytes\":%llu}",
                    r.sync_extra_mib, r.async_extra_mib, r.maxrss_mib, static_cast<unsigned long long>(r.file_bytes));
      }
      appendf(js, "]");
      if (a.heat)
        appendf(js, ",\"heat\":{\"n\":%d,\"every\":%d,\"steps\":%d,\"async\":{\"normal_s\":%.6g,\"ckpt_s\":%.6g,"
                    "\"after_s\":%.6g,\"ratio\":%.4g},\"sync\":{\"normal_s\":%.6g,\"ckpt_s\":%.6g,\"ratio\":%.4g}}",
                    a.heat_n, a.heat_every, a.heat_steps, heat_async.normal, heat_async.ckpt, heat_async.after,
                    heat_async.ckpt / heat_async.normal, heat_sync.normal, heat_sync.ckpt, heat_sync.ckpt / heat_sync.normal);
      appendf(js, "}\n");
      if (a.json)
        std::fputs(js.c_str(), stdout);
      if (!a.json_out.empty()) {
        std::ofstream jf(a.json_out);
        jf << js;
      }
    }
    if (!a.json) {
      std::printf("ckpt-bench: %d rank%s, %d interleaved rounds, medians; GB/s = total bytes / seconds\n", g_size,
                  g_size > 1 ? "s" : "", a.repeats);
      std::printf("%-10s %-14s %10s %9s\n", "size", "method", "seconds", "GB/s");
      const char *order[] = {"direct",  "buffered", "phdf5",   "sync",          "async_blocked",
                             "async_durable", "memcpy", "restore", "read_buffered", "read_direct"};
      for (const Result &r : results) {
        for (const char *k : order) {
          const double m = med(r, k);
          std::printf("%-10s %-14s %10.4f %9.3f\n", human(r.total).c_str(), k, m, r.total / m / 1e9);
        }
        std::printf("%-10s %-14s extra peak memory: sync %.1f MiB, async %.1f MiB; maxrss %.0f MiB\n", human(r.total).c_str(),
                    "memory", r.sync_extra_mib, r.async_extra_mib, r.maxrss_mib);
        // On-disk size against the target: at most 1.05 x the payload + 64 KiB.
        const double limit = 1.05 * double(r.total) + 65536.0;
        std::printf("%-10s %-14s file %llu bytes = %.4f x payload (target <= %.0f bytes: %s)\n", human(r.total).c_str(),
                    "on disk", static_cast<unsigned long long>(r.file_bytes), double(r.file_bytes) / double(r.total),
                    limit, double(r.file_bytes) <= limit ? "met" : "MISSED");
      }
      std::printf("\nratios (target):\n");
      std::printf("%-10s %12s %12s %14s %14s %12s\n", "size", "sync/plain", "sync/phdf5", "async/memcpy", "async/sync",
                  "restore/read");
      std::printf("%-10s %12s %12s %14s %14s %12s\n", "", "(>=0.85)", "(>=1.3)", "(<=1.3)", "(<=0.25)", "(>=0.85)");
      for (const Result &r : results) {
        const double limit = std::min(med(r, "direct"), med(r, "buffered"));
        const double rlimit = std::min(med(r, "read_buffered"), med(r, "read_direct"));
        std::printf("%-10s %12.2f %12.2f %14.2f %14.2f %12.2f\n", human(r.total).c_str(), limit / med(r, "sync"),
                    med(r, "phdf5") / med(r, "sync"), med(r, "async_blocked") / med(r, "memcpy"),
                    med(r, "async_blocked") / med(r, "sync"), rlimit / med(r, "restore"));
      }
      if (a.heat) {
        std::printf("\nheat %dx%d, checkpoint every %d steps, %d steps (median seconds per iteration):\n", a.heat_n,
                    a.heat_n, a.heat_every, a.heat_steps);
        std::printf("  async: normal %.3g s, checkpointing %.3g s (ratio %.2f, target <= 1.5), next iteration %.3g s\n",
                    heat_async.normal, heat_async.ckpt, heat_async.ckpt / heat_async.normal, heat_async.after);
        std::printf("  sync:  normal %.3g s, checkpointing %.3g s (ratio %.2f)\n", heat_sync.normal, heat_sync.ckpt,
                    heat_sync.ckpt / heat_sync.normal);
        std::printf("  mean iteration with async checkpoints %.3g s vs without ckpt %.3g s\n", heat_async.mean_all,
                    heat_async.mean_plain);
      }
    }
  }
  MPI_Finalize();
  return 0;
}
