#pragma once
// Shared pieces of the `ckpt` command-line tool: errors with exit codes, locating a
// checkpoint from "DIR [STEP]" or a file path, number formatting and progress lines.

#include <ckpt/catalog.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ckpt::cli {

/// Exit codes of every subcommand.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1; ///< invalid checkpoint, files differ, nothing to do
inline constexpr int exit_usage = 2;  ///< bad arguments, missing directory, foreign file

/// An error the tool reports as "ckpt CMD: message" and turns into an exit code.
class CliError : public std::runtime_error {
public:
  CliError(int exit_code, const std::string &message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const noexcept { return exit_code_; }

private:
  int exit_code_;
};

/// Options every subcommand shares.
struct Common {
  bool progress = false; ///< print progress lines on stderr
};

/// Parses a step number ("1200"); throws CliError(exit_usage) for anything else.
std::int64_t parse_step(const std::string &text);

/// The checkpoints of an existing directory, newest first.
/// \throws CliError(exit_usage) when `dir` is missing or not a directory.
std::vector<CatalogEntry> checkpoints_in(const std::filesystem::path &dir);

/// The checkpoint file named by `where` and an optional step: a file path is taken as it
/// is; a directory gives its checkpoint of `step`, or its newest one.
/// \throws CliError(exit_usage) when nothing matches, saying what exists instead.
std::filesystem::path resolve_checkpoint(const std::filesystem::path &where,
                                         std::optional<std::int64_t> step);

/// inspect() with errors turned into CliError: a file that is not a ckpt checkpoint is
/// reported as such (exit_usage).
CheckpointInfo inspect_or_fail(const std::filesystem::path &file);

/// "8.0 MiB", "512 B".
std::string human_bytes(std::uint64_t bytes);
/// The numbers of `shape` joined by `sep`: "512, 512" for sep ", ".
std::string join_numbers(const Shape &shape, const char *sep);
/// "{512, 512}", "scalar" for an empty shape.
std::string shape_text(const Shape &shape);
/// Renders a double compactly ("0.0123", "1.5e-09").
std::string number_text(double v);

/// Progress on stderr: "\r<label> 42%" when stderr is a terminal, else one line per step
/// of at least 10% (so logs stay short). Silent unless enabled.
class Progress {
public:
  Progress(bool enabled, std::string label, std::uint64_t total);
  void advance(std::uint64_t amount);
  void finish();
  ~Progress();

private:
  bool enabled_;
  bool tty_;
  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  int last_percent_ = -1;
  bool finished_ = false;
};

/// Whether progress should be shown by default (stderr is a terminal).
bool stderr_is_tty();

} // namespace ckpt::cli
