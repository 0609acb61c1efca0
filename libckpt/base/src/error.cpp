#include <ckpt/error.hpp>

#include <fmt/format.h>

namespace ckpt {

const char *errc_name(Errc code) noexcept {
  switch (code) {
  case Errc::ok: return "ok";
  case Errc::invalid_argument: return "invalid_argument";
  case Errc::io: return "io";
  case Errc::no_space: return "no_space";
  case Errc::hdf5: return "hdf5";
  case Errc::mpi: return "mpi";
  case Errc::corrupt: return "corrupt";
  case Errc::unsupported_version: return "unsupported_version";
  case Errc::mismatch: return "mismatch";
  case Errc::rank_count: return "rank_count";
  case Errc::missing_field: return "missing_field";
  case Errc::no_valid_checkpoint: return "no_valid_checkpoint";
  case Errc::locked: return "locked";
  case Errc::remote: return "remote";
  case Errc::internal: return "internal";
  case Errc::restart_limit: return "restart_limit";
  }
  return "unknown";
}

static std::string prefixed(int rank, const std::string &message) {
  if (rank < 0)
    return "ckpt: " + message;
  return fmt::format("ckpt[rank {}] {}", rank, message);
}

Error::Error(Errc code, int rank, const std::string &message)
    : std::runtime_error(prefixed(rank, message)), code_(code), rank_(rank), detail_(message) {}

} // namespace ckpt
