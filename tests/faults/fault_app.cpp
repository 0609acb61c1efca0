// fault_app: the solver the fault-injection suite kills, corrupts and starves.
//
// Its state at step s is a pure function of s, so every restore can be checked bit for bit
// against a recomputation, and the final digest of an interrupted run can be compared
// with an uninterrupted one. State: a distributed uint64 array `u` (rows split over the
// ranks), a distributed float64 array `w`, replicated `t` (float64) and `params` (int32[4]),
// and a per-rank vector `rng` whose length changes with the step (resized on restore).
//
// Modes (all collective; output lines are for tests/faults/*.py):
//   fault_app --dir D --steps S --every K [--n N] [--keep K] [--verify-all]
//       runs the loop helper: restores, checks the restored state bit for bit
//       ("restored: <s> bitexact"), steps, checkpoints, ends with "result: <hex>".
//   fault_app --dir D --check-only [--n N]
//       restores only and checks it ("restored: <s> bitexact" or "restored: none").
//   fault_app --cases FILE [--n N]
//       for each directory listed in FILE: restore and check; one JSON line per case.
//   fault_app --verify FILE...
//       ckpt::verify of each file on rank 0; one JSON line per file.
//   fault_app --save-once --dir D --step S [--n N]
//       writes the state of step S with one save() (the full-disk test).

#include <ckpt/ckpt.hpp>

#include <mpi.h>
#include <nlohmann/json.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

int g_rank = 0, g_size = 1;

struct Args {
  std::string dir = "fault-checkpoints";
  std::int64_t steps = 20, every = 1, step = 0;
  std::uint64_t n = 256; // rows of u and w; 256 columns each
  int keep = 2;
  bool check_only = false, verify_all = false, save_once = false;
  std::string cases;
  std::vector<std::string> verify;
};

constexpr std::uint64_t cols = 256;

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// The whole state of this rank at a step.
struct State {
  std::uint64_t y0 = 0, ny = 0;
  std::vector<std::uint64_t> u;
  std::vector<double> w;
  double t = 0;
  std::int32_t params[4] = {0, 0, 0, 0};
  std::vector<std::uint64_t> rng;

  void init(std::uint64_t n) {
    const std::uint64_t base = n / g_size, rem = n % g_size, r = static_cast<std::uint64_t>(g_rank);
    y0 = r * base + (r < rem ? r : rem);
    ny = base + (r < rem ? 1 : 0);
    u.assign(ny * cols, 0);
    w.assign(ny * cols, 0);
    for (std::uint64_t i = 0; i < ny * cols; ++i) {
      const std::uint64_t g = y0 * cols + i;
      u[i] = mix(g + 1);
      w[i] = static_cast<double>(g) * 0.5;
    }
    t = 0;
    params[0] = 7;
    params[1] = static_cast<std::int32_t>(n);
    params[2] = 0;
    params[3] = -1;
    set_rng(0);
  }
  void set_rng(std::int64_t s) {
    rng.assign(static_cast<std::size_t>(g_rank + 1 + s % 3), 0);
    for (std::size_t j = 0; j < rng.size(); ++j)
      rng[j] = mix((static_cast<std::uint64_t>(s) << 20) ^ (static_cast<std::uint64_t>(g_rank) << 8) ^ j);
  }
  // One step: s is the number of completed steps before it.
  void advance(std::int64_t s) {
    for (std::uint64_t i = 0; i < u.size(); ++i) {
      u[i] = mix(u[i] ^ static_cast<std::uint64_t>(s));
      w[i] = w[i] * 0.999 + static_cast<double>(u[i] >> 40) * 1e-6;
    }
    t += 0.125;
    params[2] += 1;
    set_rng(s + 1);
  }
};

State state_at(std::uint64_t n, std::int64_t s) {
  State st;
  st.init(n);
  for (std::int64_t k = 0; k < s; ++k)
    st.advance(k);
  return st;
}

bool same(const State &a, const State &b) {
  return a.u == b.u && std::memcmp(a.w.data(), b.w.data(), a.w.size() * sizeof(double)) == 0 &&
         a.w.size() == b.w.size() && std::memcmp(&a.t, &b.t, sizeof(double)) == 0 &&
         std::memcmp(a.params, b.params, sizeof a.params) == 0 && a.rng == b.rng;
}

void register_state(ckpt::Checkpointer &cp, State &st, std::uint64_t n) {
  cp.distributed("u", st.u.data(), {.global = {n, cols}, .offset = {st.y0, 0}, .count = {st.ny, cols}});
  cp.distributed("w", st.w.data(), {.global = {n, cols}, .offset = {st.y0, 0}, .count = {st.ny, cols}});
  cp.replicated("t", &st.t);
  cp.replicated("params", st.params, {4});
  cp.per_rank("rng", st.rng);
  cp.metadata("app", "fault_app");
}

ckpt::Options options(const std::string &dir, std::int64_t every, int keep) {
  ckpt::Options o;
  o.dir = dir;
  o.every = every;
  o.keep = keep;
  o.quiet = true;
  o.signals = {};
  return o;
}

// All ranks agree whether the restored state equals the recomputed one.
bool check_restored(const State &st, std::uint64_t n, std::int64_t s) {
  const int mine = same(st, state_at(n, s)) ? 1 : 0;
  int all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

std::string digest(const State &st, std::uint64_t n) {
  std::vector<std::uint64_t> h(2 * static_cast<std::size_t>(g_size));
  std::uint64_t mine[2] = {XXH3_64bits(st.u.data(), st.u.size() * 8) ^ XXH3_64bits(st.w.data(), st.w.size() * 8),
                           XXH3_64bits(st.rng.data(), st.rng.size() * 8)};
  MPI_Gather(mine, 2, MPI_UINT64_T, h.data(), 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  std::uint64_t total = XXH3_64bits(&st.t, sizeof st.t) ^ XXH3_64bits(st.params, sizeof st.params) ^ n;
  for (auto x : h)
    total = mix(total ^ x);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, total);
  return buf;
}

/// One JSON line of a report; bytes that are not UTF-8 (messages may quote file names) are
/// replaced.
std::string json_line(const nlohmann::json &j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void say(const std::string &line) {
  if (g_rank == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

// Restores `dir` and reports one JSON object: what restore did and whether the data is exact.
std::string restore_case(const std::string &dir, std::uint64_t n) {
  State st;
  st.init(n);
  // Poison the buffers: a restore that silently skipped a field would not match.
  std::fill(st.u.begin(), st.u.end(), 0xdeadbeefULL);
  std::string code = "ok", message;
  long long restored = -1;
  bool exact = false;
  try {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, options(dir, 0, 0));
    register_state(cp, st, n);
    auto r = cp.restore();
    if (r) {
      restored = *r;
      exact = check_restored(st, n, *r);
    }
  } catch (const ckpt::Error &e) {
    code = ckpt::errc_name(e.code());
    message = e.what();
  }
  return json_line({{"dir", dir}, {"code", code}, {"restored", restored}, {"bitexact", exact}, {"message", message}});
}

std::string verify_json(const std::string &file) {
  const auto rep = ckpt::verify(file);
  return json_line({{"file", file}, {"ok", rep.ok}, {"reason", rep.reason}, {"blocks", rep.blocks_checked}});
}

Args parse(int argc, char **argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fault_app: %s needs a value\n", k.c_str());
        MPI_Abort(MPI_COMM_WORLD, 2);
      }
      return argv[++i];
    };
    if (k == "--dir") a.dir = next();
    else if (k == "--steps") a.steps = std::stoll(next());
    else if (k == "--every") a.every = std::stoll(next());
    else if (k == "--step") a.step = std::stoll(next());
    else if (k == "--n") a.n = std::stoull(next());
    else if (k == "--keep") a.keep = std::stoi(next());
    else if (k == "--check-only") a.check_only = true;
    else if (k == "--verify-all") a.verify_all = true;
    else if (k == "--save-once") a.save_once = true;
    else if (k == "--cases") a.cases = next();
    else if (k == "--verify") {
      while (i + 1 < argc)
        a.verify.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "fault_app: unknown argument %s\n", k.c_str());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }
  return a;
}

int run(const Args &a) {
  if (!a.verify.empty()) {
    if (g_rank == 0)
      for (const auto &f : a.verify)
        say(verify_json(f));
    return 0;
  }
  if (!a.cases.empty()) {
    std::ifstream in(a.cases);
    std::string dir;
    while (std::getline(in, dir))
      if (!dir.empty())
        say(restore_case(dir, a.n));
    return 0;
  }
  if (a.check_only) {
    const std::string j = restore_case(a.dir, a.n);
    say(j);
    return j.find("\"code\":\"ok\"") != std::string::npos ? 0 : 1;
  }

  // Tell the harness where the ranks are, so it can kill one of them.
  {
    std::vector<int> pids(static_cast<std::size_t>(g_size));
    const int me = static_cast<int>(::getpid());
    MPI_Gather(&me, 1, MPI_INT, pids.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::string line = "pids:";
    for (int p : pids)
      line += " " + std::to_string(p);
    say(line);
  }
  if (a.verify_all && g_rank == 0)
    for (const auto &e : ckpt::list_checkpoints(a.dir))
      say("verify: " + verify_json(e.path.string()));

  State st;
  st.init(a.n);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, options(a.dir, a.every, a.keep));
  register_state(cp, st, a.n);
  if (a.save_once) {
    // Copy into the registered buffers (a move would leave the Checkpointer dangling).
    const State want = state_at(a.n, a.step);
    std::copy(want.u.begin(), want.u.end(), st.u.begin());
    std::copy(want.w.begin(), want.w.end(), st.w.begin());
    st.t = want.t;
    std::copy(std::begin(want.params), std::end(want.params), st.params);
    st.rng = want.rng;
    cp.save(a.step, st.t);
    say("saved: " + std::to_string(a.step));
    return 0;
  }
  auto r = cp.restore();
  if (r) {
    const bool ok = check_restored(st, a.n, *r);
    say("restored: " + std::to_string(*r) + (ok ? " bitexact" : " MISMATCH"));
    if (!ok)
      return 3;
  } else {
    say("restored: none");
  }
  for (auto step : cp.steps(a.steps)) {
    st.advance(step);
    cp.set_time(st.t);
  }
  const std::string d = digest(st, a.n);
  say("result: " + d);
  return cp.exit_code();
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  int code = 0;
  try {
    code = run(parse(argc, argv));
  } catch (const ckpt::Error &e) {
    std::fprintf(stderr, "fault_app: error code=%s: %s\n", ckpt::errc_name(e.code()), e.what());
    if (g_rank == 0)
      std::printf("error: %s\n", ckpt::errc_name(e.code()));
    std::fflush(stdout);
    code = 10 + static_cast<int>(e.code());
  }
  MPI_Finalize();
  return code;
}
