// heat: 2-D Jacobi heat equation (as in the benchpress heat_equation benchmark),
// block-decomposed over MPI ranks with halo exchange, made restartable with ckpt.
//
// The interior grid is n x n cells, all 0.0 at the start; the fixed boundary is 40.0 on
// the top edge and -273.15 on the other three. Each step every interior cell becomes
// 0.2 * (center + north + east + west + south). Every cell is computed with the same
// operations in the same order whatever the decomposition, so the final grid, and the
// `result:` digest printed at the end, do not depend on the number of ranks.
//
// The lines marked "ckpt" are all it takes to make the solver restartable.

#include <ckpt/ckpt.hpp> // ckpt

#include <mpi.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Args {
  std::uint64_t n = 512;
  std::int64_t steps = 1000;
  std::int64_t every = 100;
  std::string dir = "heat-checkpoints";
};

[[noreturn]] void usage(int rank, int code) {
  if (rank == 0)
    std::fprintf(code ? stderr : stdout,
                 "usage: heat [--n N] [--steps S] [--every K] [--dir DIR]\n"
                 "  --n N      interior grid is N x N cells (default 512)\n"
                 "  --steps S  number of Jacobi steps (default 1000)\n"
                 "  --every K  checkpoint every K steps, 0 for never (default 100)\n"
                 "  --dir DIR  checkpoint directory (default heat-checkpoints)\n"
                 "Resumes from the newest valid checkpoint in DIR. CKPT_* environment variables\n"
                 "override these settings (see docs/user-guide.md). Exits 75 when it stopped\n"
                 "early after a checkpoint (signal or time limit) with work left.\n");
  MPI_Finalize();
  std::exit(code);
}

Args parse(int argc, char **argv, int rank) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h")
      usage(rank, 0);
    if (i + 1 >= argc)
      usage(rank, 2);
    const char *v = argv[++i];
    char *end = nullptr;
    if (k == "--n")
      a.n = std::strtoull(v, &end, 10);
    else if (k == "--steps")
      a.steps = std::strtoll(v, &end, 10);
    else if (k == "--every")
      a.every = std::strtoll(v, &end, 10);
    else if (k == "--dir")
      a.dir = v, end = const_cast<char *>(v) + std::strlen(v);
    else
      usage(rank, 2);
    if (!end || *end != '\0' || a.n == 0 || a.steps < 0 || a.every < 0)
      usage(rank, 2);
  }
  return a;
}

// Start and length of part `i` of `n` cells split into `p` nearly equal parts.
void split(std::uint64_t n, int p, int i, std::uint64_t &start, std::uint64_t &len) {
  const std::uint64_t base = n / p, rem = n % p;
  const std::uint64_t ui = static_cast<std::uint64_t>(i);
  start = ui * base + (ui < rem ? ui : rem);
  len = base + (ui < rem ? 1 : 0);
}

} // namespace

int run(const Args &args, int rank, int size);

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const Args args = parse(argc, argv, rank);
  int code = 1;
  try {
    code = run(args, rank, size);
  } catch (const ckpt::Error &e) {
    // ckpt agrees on errors: every rank gets here with the same message.
    if (rank == 0)
      std::fprintf(stderr, "heat: %s\n", e.what());
  }
  MPI_Finalize();
  return code;
}

int run(const Args &args, int rank, int size) {
  const std::uint64_t n = args.n;

  // 2-D process grid and this rank's block of the interior.
  int dims[2] = {0, 0}, periods[2] = {0, 0}, coords[2];
  MPI_Dims_create(size, 2, dims);
  MPI_Comm cart;
  MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart);
  MPI_Cart_coords(cart, rank, 2, coords);
  int north, south, west, east;
  MPI_Cart_shift(cart, 0, 1, &north, &south);
  MPI_Cart_shift(cart, 1, 1, &west, &east);
  std::uint64_t y0, ny, x0, nx;
  split(n, dims[0], coords[0], y0, ny);
  split(n, dims[1], coords[1], x0, nx);
  if (ny == 0 || nx == 0) {
    if (rank == 0)
      std::fprintf(stderr, "heat: grid %" PRIu64 " is too small for %d ranks\n", n, size);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }

  // Local grid with one ghost cell on each side; ghosts on the global edge hold the boundary.
  const std::uint64_t W = nx + 2, H = ny + 2;
  std::vector<double> u(H * W, 0.0), v(H * W, 0.0);
  auto at = [W](std::vector<double> &g, std::uint64_t y, std::uint64_t x) -> double & { return g[y * W + x]; };
  for (std::uint64_t y = 0; y < H; ++y)
    for (std::uint64_t x = 0; x < W; ++x) {
      double b = 0.0;
      if (y == 0 && north == MPI_PROC_NULL)
        b = 40.0;
      else if ((y == H - 1 && south == MPI_PROC_NULL) || (x == 0 && west == MPI_PROC_NULL) ||
               (x == W - 1 && east == MPI_PROC_NULL))
        b = -273.15;
      at(u, y, x) = at(v, y, x) = b;
    }
  // Corners of ghost rows are never read by the 5-point stencil.
  MPI_Datatype column;
  MPI_Type_vector(static_cast<int>(ny), 1, static_cast<int>(W), MPI_DOUBLE, &column);
  MPI_Type_commit(&column);

  ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = args.dir, .every = args.every}); // ckpt
  cp.distributed("u", u.data(), {.global = {n, n}, .offset = {y0, x0}, .count = {ny, nx}, // ckpt
                                 .memory = {H, W}, .memory_offset = {1, 1}});            // ckpt
  cp.grid("u", {}); // ckpt (optional): each checkpoint opens as an image in ParaView (VTKHDF)

  const double t0 = MPI_Wtime();
  for (auto step : cp.steps(args.steps)) { // ckpt
    (void)step;
    // Halo exchange: rows north/south, columns west/east.
    MPI_Sendrecv(&at(u, 1, 1), int(nx), MPI_DOUBLE, north, 0, &at(u, H - 1, 1), int(nx), MPI_DOUBLE, south, 0,
                 cart, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&at(u, H - 2, 1), int(nx), MPI_DOUBLE, south, 1, &at(u, 0, 1), int(nx), MPI_DOUBLE, north, 1,
                 cart, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&at(u, 1, 1), 1, column, west, 2, &at(u, 1, W - 1), 1, column, east, 2, cart, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&at(u, 1, W - 2), 1, column, east, 3, &at(u, 1, 0), 1, column, west, 3, cart, MPI_STATUS_IGNORE);
    for (std::uint64_t y = 1; y <= ny; ++y) {
      const double *c = &u[y * W], *up = &u[(y - 1) * W], *dn = &u[(y + 1) * W];
      double *o = &v[y * W];
      for (std::uint64_t x = 1; x <= nx; ++x)
        o[x] = 0.2 * ((((c[x] + up[x]) + c[x + 1]) + c[x - 1]) + dn[x]);
    }
    for (std::uint64_t y = 1; y <= ny; ++y) // center[:] = work, as in benchpress
      std::memcpy(&u[y * W + 1], &v[y * W + 1], nx * sizeof(double));
  }
  const double wall = MPI_Wtime() - t0;

  if (cp.stopped() == ckpt::StopReason::finished) {
    // Gather the interior to rank 0 in global C order and hash it.
    std::vector<double> mine(ny * nx);
    for (std::uint64_t y = 0; y < ny; ++y)
      std::memcpy(&mine[y * nx], &u[(y + 1) * W + 1], nx * sizeof(double));
    std::vector<int> counts(size), displs(size);
    const int cnt = static_cast<int>(ny * nx);
    MPI_Gather(&cnt, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int r = 1; r < size; ++r)
      displs[r] = displs[r - 1] + counts[r - 1];
    std::vector<double> parts(rank == 0 ? n * n : 0), grid(rank == 0 ? n * n : 0);
    MPI_Gatherv(mine.data(), cnt, MPI_DOUBLE, parts.data(), counts.data(), displs.data(), MPI_DOUBLE, 0,
                MPI_COMM_WORLD);
    if (rank == 0) {
      for (int r = 0; r < size; ++r) {
        int c[2];
        MPI_Cart_coords(cart, r, 2, c);
        std::uint64_t ry0, rny, rx0, rnx;
        split(n, dims[0], c[0], ry0, rny);
        split(n, dims[1], c[1], rx0, rnx);
        for (std::uint64_t y = 0; y < rny; ++y)
          std::memcpy(&grid[(ry0 + y) * n + rx0], &parts[std::size_t(displs[r]) + y * rnx], rnx * sizeof(double));
      }
      const XXH128_hash_t h = XXH3_128bits(grid.data(), grid.size() * sizeof(double));
      std::printf("heat: n=%" PRIu64 " steps=%" PRId64 " ranks=%d resumed_from=%" PRId64 " seconds=%.3f\n", n,
                  args.steps, size, cp.restored_step().value_or(0), wall);
      std::printf("result: %016" PRIx64 "%016" PRIx64 "\n", h.high64, h.low64);
    }
  } else if (rank == 0) {
    std::printf("heat: stopped after a checkpoint (%s); run again to continue\n",
                ckpt::stop_reason_name(cp.stopped()));
  }
  std::fflush(stdout);
  MPI_Type_free(&column);
  MPI_Comm_free(&cart);
  return cp.exit_code(); // ckpt
}
