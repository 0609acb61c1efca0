#include "common.hpp"

#include <ckpt/error.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <system_error>

namespace fs = std::filesystem;

namespace ckpt::cli {

std::int64_t parse_step(const std::string &text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    throw CliError(exit_usage, fmt::format("'{}' is not a step number (expected digits, e.g. 1200)", text));
  return std::stoll(text);
}

std::vector<CatalogEntry> checkpoints_in(const fs::path &dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw CliError(exit_usage, fmt::format("no such directory: {}", dir.string()));
  if (!fs::is_directory(dir, ec))
    throw CliError(exit_usage, fmt::format("not a directory: {}", dir.string()));
  try {
    return list_checkpoints(dir);
  } catch (const Error &e) {
    throw CliError(exit_usage, fmt::format("cannot read directory {}: {}", dir.string(), e.detail()));
  }
}

fs::path resolve_checkpoint(const fs::path &where, std::optional<std::int64_t> step) {
  std::error_code ec;
  if (!fs::exists(where, ec))
    throw CliError(exit_usage, fmt::format("no such file or directory: {}", where.string()));
  if (!fs::is_directory(where, ec)) {
    if (step)
      throw CliError(exit_usage,
                     fmt::format("{} is a file; a STEP can only be given with a directory", where.string()));
    return where;
  }
  auto entries = checkpoints_in(where);
  if (entries.empty())
    throw CliError(exit_usage, fmt::format("no checkpoints (ckpt-<step>.h5) in {}", where.string()));
  if (!step) return entries.front().path;
  for (const auto &e : entries)
    if (e.step == *step) return e.path;
  std::string have;
  for (std::size_t i = 0; i < entries.size() && i < 8; ++i) {
    if (i) have += ", ";
    have += std::to_string(entries[i].step);
  }
  if (entries.size() > 8) have += ", ...";
  throw CliError(exit_usage, fmt::format("no checkpoint of step {} in {} (steps present, newest first: {})",
                                         *step, where.string(), have));
}

CheckpointInfo inspect_or_fail(const fs::path &file) {
  try {
    return inspect(file);
  } catch (const Error &e) {
    if (e.code() == Errc::unsupported_version)
      throw CliError(exit_usage, fmt::format("{}: {} (written by a newer ckpt? this is ckpt {})",
                                             file.string(), e.detail(), library_version()));
    // The library's message usually names the file already.
    if (e.detail().find(file.string()) != std::string::npos) throw CliError(exit_usage, e.detail());
    throw CliError(exit_usage,
                   fmt::format("{} is not a readable ckpt checkpoint: {}", file.string(), e.detail()));
  }
}

std::string human_bytes(std::uint64_t bytes) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string join_numbers(const Shape &shape, const char *sep) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += sep;
    s += std::to_string(shape[i]);
  }
  return s;
}

std::string shape_text(const Shape &shape) {
  if (shape.empty()) return "scalar";
  return fmt::format("{{{}}}", join_numbers(shape, ", "));
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.6g}", v);
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(bool enabled, std::string label, std::uint64_t total)
    : enabled_(enabled), tty_(stderr_is_tty()), label_(std::move(label)), total_(total) {}

void Progress::advance(std::uint64_t amount) {
  if (!enabled_) return;
  done_ += amount;
  int percent = total_ ? static_cast<int>((done_ * 100) / total_) : 100;
  if (percent > 100) percent = 100;
  if (tty_) {
    if (percent != last_percent_) {
      std::fprintf(stderr, "\r%s %3d%%", label_.c_str(), percent);
      std::fflush(stderr);
      last_percent_ = percent;
    }
  } else if (last_percent_ < 0 || percent >= last_percent_ + 10 || (percent == 100 && last_percent_ != 100)) {
    std::fprintf(stderr, "%s %d%%\n", label_.c_str(), percent);
    last_percent_ = percent;
  }
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (last_percent_ != 100) {
    done_ = total_;
    if (tty_)
      std::fprintf(stderr, "\r%s 100%%", label_.c_str());
    else
      std::fprintf(stderr, "%s 100%%\n", label_.c_str());
  }
  if (tty_) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

Progress::~Progress() {
  // Leave the terminal on a fresh line even when an error ended the work early.
  if (enabled_ && tty_ && !finished_ && last_percent_ >= 0) std::fprintf(stderr, "\n");
}

} // namespace ckpt::cli
