#include <ckpt/mpi/comm.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

namespace ckpt::mpi {

void check(int rc, const char *what, int rank) {
  if (rc == MPI_SUCCESS)
    return;
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS)
    len = 0;
  throw Error(Errc::mpi, rank, fmt::format("MPI error in {}: {}", what, std::string(buf, len)));
}

Comm::Comm(MPI_Comm user) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    throw Error(Errc::invalid_argument, -1, "MPI is not initialised: call MPI_Init first");
  if (user == MPI_COMM_NULL)
    throw Error(Errc::invalid_argument, -1, "the communicator is MPI_COMM_NULL");
  check(MPI_Comm_dup(user, &comm_), "duplicating the communicator");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Comm::~Comm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_SELF && !finalized)
    MPI_Comm_free(&comm_);
}

Comm::Comm(Comm &&o) noexcept
    : comm_(std::exchange(o.comm_, MPI_COMM_NULL)), rank_(o.rank_), size_(o.size_) {}

Comm &Comm::operator=(Comm &&o) noexcept {
  if (this != &o) {
    Comm tmp(std::move(*this));
    comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
    rank_ = o.rank_;
    size_ = o.size_;
  }
  return *this;
}

void Comm::barrier(const char *what) const { check(MPI_Barrier(comm_), what, rank_); }

std::int64_t Comm::allreduce_max(std::int64_t v, const char *what) const {
  std::int64_t r = 0;
  check(MPI_Allreduce(&v, &r, 1, MPI_INT64_T, MPI_MAX, comm_), what, rank_);
  return r;
}
std::int64_t Comm::allreduce_min(std::int64_t v, const char *what) const {
  std::int64_t r = 0;
  check(MPI_Allreduce(&v, &r, 1, MPI_INT64_T, MPI_MIN, comm_), what, rank_);
  return r;
}
std::int64_t Comm::allreduce_sum(std::int64_t v, const char *what) const {
  std::int64_t r = 0;
  check(MPI_Allreduce(&v, &r, 1, MPI_INT64_T, MPI_SUM, comm_), what, rank_);
  return r;
}
double Comm::allreduce_max(double v, const char *what) const {
  double r = 0;
  check(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm_), what, rank_);
  return r;
}
std::int64_t Comm::bcast(std::int64_t v, int root, const char *what) const {
  check(MPI_Bcast(&v, 1, MPI_INT64_T, root, comm_), what, rank_);
  return v;
}
double Comm::bcast(double v, int root, const char *what) const {
  check(MPI_Bcast(&v, 1, MPI_DOUBLE, root, comm_), what, rank_);
  return v;
}
std::string Comm::bcast(const std::string &s, int root, const char *what) const {
  std::int64_t n = bcast(static_cast<std::int64_t>(s.size()), root, what);
  std::string r = rank_ == root ? s : std::string(static_cast<std::size_t>(n), '\0');
  if (n > 0)
    check(MPI_Bcast(r.data(), static_cast<int>(n), MPI_CHAR, root, comm_), what, rank_);
  return r;
}
std::optional<std::vector<std::byte>> Comm::exchange(const std::optional<std::vector<std::byte>> &out, int dest,
                                                     int source, const char *what) const {
  constexpr std::uint64_t none = ~std::uint64_t(0);
  const int to = dest < 0 ? MPI_PROC_NULL : dest, from = source < 0 ? MPI_PROC_NULL : source;
  std::uint64_t size_out = out ? out->size() : none, size_in = none;
  check(MPI_Sendrecv(&size_out, 1, MPI_UINT64_T, to, 0, &size_in, 1, MPI_UINT64_T, from, 0, comm_, MPI_STATUS_IGNORE),
        what, rank_);
  if (from == MPI_PROC_NULL)
    size_in = none;
  std::optional<std::vector<std::byte>> in;
  if (size_in != none)
    in.emplace(static_cast<std::size_t>(size_in));
  const std::uint64_t send_total = out && to != MPI_PROC_NULL ? out->size() : 0, recv_total = in ? in->size() : 0;
  constexpr std::uint64_t piece = 1u << 30;
  for (std::uint64_t at = 0; at < send_total || at < recv_total; at += piece) {
    const int s = static_cast<int>(at < send_total ? std::min(piece, send_total - at) : 0);
    const int r = static_cast<int>(at < recv_total ? std::min(piece, recv_total - at) : 0);
    check(MPI_Sendrecv(s ? out->data() + at : nullptr, s, MPI_BYTE, s ? to : MPI_PROC_NULL, 1,
                       r ? in->data() + at : nullptr, r, MPI_BYTE, r ? from : MPI_PROC_NULL, 1, comm_,
                       MPI_STATUS_IGNORE),
          what, rank_);
  }
  return in;
}

namespace {

// Every rank's count (or -1: "I failed"), gathered.
std::vector<int> gather_counts(const Comm &comm, int mine, const char *what) {
  std::vector<int> counts(static_cast<std::size_t>(comm.size()));
  check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, comm.get()), what, comm.rank());
  return counts;
}

// The allgatherv once every rank's count is known.
std::vector<std::uint64_t> gather_values(const Comm &comm, const std::vector<int> &counts,
                                         const std::vector<std::uint64_t> &v, std::vector<std::uint64_t> *starts,
                                         const char *what) {
  std::vector<int> displs(counts.size());
  int total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    displs[i] = total;
    total += counts[i];
  }
  std::vector<std::uint64_t> r(static_cast<std::size_t>(total));
  check(MPI_Allgatherv(v.data(), static_cast<int>(v.size()), MPI_UINT64_T, r.data(), counts.data(), displs.data(),
                       MPI_UINT64_T, comm.get()),
        what, comm.rank());
  if (starts)
    starts->assign(displs.begin(), displs.end());
  return r;
}

} // namespace

std::vector<std::uint64_t> Comm::allgatherv(const std::vector<std::uint64_t> &v,
                                            std::vector<std::uint64_t> *starts,
                                            const char *what) const {
  return gather_values(*this, gather_counts(*this, static_cast<int>(v.size()), what), v, starts, what);
}

std::vector<std::uint64_t> allgatherv_agreed(const Comm &comm, const Status &local, const std::vector<std::uint64_t> &v,
                                             std::vector<std::uint64_t> *starts, const char *what) {
  const auto counts = gather_counts(comm, local.ok() ? static_cast<int>(v.size()) : -1, what);
  for (const int c : counts)
    if (c < 0) {
      agree(comm, local); // some rank failed: throws its error on every rank
      throw Error(Errc::internal, comm.rank(), fmt::format("{}: a rank failed but agreement found none", what));
    }
  return gather_values(comm, counts, v, starts, what);
}

std::vector<std::uint64_t> bcast_agreed(const Comm &comm, const Status &root_status, const std::vector<std::uint64_t> &v,
                                        int root, const char *what) {
  // {size or -1, error code}, then the vector or the error message.
  std::int64_t head[2] = {root_status.ok() ? static_cast<std::int64_t>(v.size()) : -1,
                          static_cast<std::int64_t>(root_status.code)};
  check(MPI_Bcast(head, 2, MPI_INT64_T, root, comm.get()), what, comm.rank());
  if (head[0] < 0) {
    const std::string msg = comm.bcast(root_status.message, root, what);
    throw Error(static_cast<Errc>(head[1]), root, msg);
  }
  std::vector<std::uint64_t> r = comm.rank() == root ? v : std::vector<std::uint64_t>(static_cast<std::size_t>(head[0]));
  if (head[0] > 0)
    check(MPI_Bcast(r.data(), static_cast<int>(head[0]), MPI_UINT64_T, root, comm.get()), what, comm.rank());
  return r;
}

Status Status::from_current_exception(int rank) {
  try {
    throw;
  } catch (const Error &e) {
    return {e.code() == Errc::ok ? Errc::internal : e.code(), e.detail()};
  } catch (const std::bad_alloc &) {
    return {Errc::internal, "out of memory"};
  } catch (const std::exception &e) {
    return {Errc::internal, fmt::format("unexpected error on rank {}: {}", rank, e.what())};
  } catch (...) {
    return {Errc::internal, fmt::format("unknown exception on rank {}", rank)};
  }
}

void agree(const Comm &comm, const Status &local) {
  // MINLOC over (failed ? 0 : 1, rank) finds the lowest failing rank in one allreduce.
  struct {
    int value;
    int rank;
  } in{local.ok() ? 1 : 0, comm.rank()}, out{1, 0};
  check(MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, comm.get()), "agreeing on status",
        comm.rank());
  if (out.value == 1)
    return;
  std::int64_t code = comm.bcast(static_cast<std::int64_t>(local.code), out.rank,
                                 "broadcasting the error code");
  std::string msg = comm.bcast(local.message, out.rank, "broadcasting the error message");
  throw Error(static_cast<Errc>(code), out.rank, msg);
}

} // namespace ckpt::mpi
