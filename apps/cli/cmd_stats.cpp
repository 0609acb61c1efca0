// ckpt stats: what checkpointing cost a run, from the statistics log the library writes
// beside the checkpoints (DIR/ckpt-stats.jsonl), and an optional plot through matplotlib.

#include "commands.hpp"
#include "common.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <vector>

extern char **environ;

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

/// One record of the log: a flat JSON object (numbers, strings, booleans, null).
using Record = nlohmann::json;

/// Parses one line of the log with nlohmann-json. Nested objects and arrays are not part
/// of the log format and make the line malformed, as does anything that is not strict
/// JSON (a partial last line, NaN). Returns nothing when malformed.
std::optional<Record> parse_record(const std::string &line) {
  Record r = Record::parse(line, nullptr, /*allow_exceptions=*/false);
  if (r.is_discarded() || !r.is_object()) return std::nullopt;
  for (const auto &item : r.items())
    if (item.value().is_structured()) return std::nullopt;
  return r;
}

std::optional<double> num(const Record &r, const char *key) {
  auto it = r.find(key);
  if (it == r.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::string str(const Record &r, const char *key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// Mean, max and the step of the max of a series.
struct Series {
  std::size_t n = 0;
  double sum = 0, max = 0, min = 0;
  std::int64_t max_step = -1;
  void add(double v, std::int64_t step) {
    if (n == 0 || v > max) {
      max = v;
      max_step = step;
    }
    if (n == 0 || v < min) min = v;
    sum += v;
    ++n;
  }
  double mean() const { return n ? sum / static_cast<double>(n) : 0; }
};

std::string seconds_text(double s) {
  if (s < 1e-3) return fmt::format("{:.1f} us", s * 1e6);
  if (s < 1.0) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.3f} s", s);
}

/// "1.23 GB/s" or "45.6 MB/s" (decimal units, as the log's gbps).
std::string rate_text(double gbps) {
  if (gbps >= 1.0) return fmt::format("{:.2f} GB/s", gbps);
  if (gbps >= 1e-3) return fmt::format("{:.3g} MB/s", gbps * 1e3);
  return fmt::format("{:.3g} kB/s", gbps * 1e6);
}

fs::path self_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

/// The plot script: $CKPT_PLOT_SCRIPT, else beside this executable (build tree and
/// install tree both put it there).
fs::path plot_script() {
  if (const char *env = std::getenv("CKPT_PLOT_SCRIPT"); env && *env) return env;
  return self_dir() / "ckpt-stats-plot.py";
}

/// Runs `python3 script log png` without a shell; returns its exit status.
int run_plot(const fs::path &log, const fs::path &png) {
  fs::path script = plot_script();
  std::error_code ec;
  if (!fs::exists(script, ec))
    throw CliError(exit_failed, fmt::format("plot script not found: {} (set CKPT_PLOT_SCRIPT)", script.string()));
  std::string python = "/usr/bin/python3";
  if (const char *env = std::getenv("CKPT_PYTHON"); env && *env) python = env;
  std::vector<std::string> argv_s = {python, script.string(), log.string(), png.string()};
  std::vector<char *> argv;
  for (auto &a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  std::cout.flush();
  int rc = posix_spawn(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0)
    throw CliError(exit_failed, fmt::format("cannot run {}: {} (set CKPT_PYTHON to a python3 with matplotlib)",
                                            python, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

} // namespace

int cmd_stats(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("where", po::value<std::string>()->required(), "checkpoint directory, or the ckpt-stats.jsonl file itself")
      ("plot", po::value<std::string>(), "also draw the costs into this PNG file (needs python3 with matplotlib)")
      ("json", "print the summary as one JSON object");
  po::positional_options_description pos;
  pos.add("where", 1);
  po::variables_map vm;
  if (!parse_args("stats", "DIR [--plot FILE.png] [--json]",
                  "Summarises what checkpointing cost a run, from the log the library appends to\n"
                  "DIR/ckpt-stats.jsonl on every save and restore: number of saves, bytes, the\n"
                  "time the application was blocked per save (mean, max), the time until each\n"
                  "checkpoint was durable, the write bandwidth, and the overhead relative to the\n"
                  "time spent computing (when the application uses the loop helper, which records\n"
                  "the mean time per iteration). --plot draws the cost of every checkpoint over\n"
                  "the run and the time per iteration.",
                  args, opts, pos, vm))
    return exit_ok;
  fs::path where = vm["where"].as<std::string>();
  std::error_code ec;
  if (!fs::exists(where, ec)) throw CliError(exit_usage, fmt::format("no such file or directory: {}", where.string()));
  fs::path log = fs::is_directory(where, ec) ? where / "ckpt-stats.jsonl" : where;
  if (!fs::exists(log, ec))
    throw CliError(exit_failed, fmt::format("no statistics log {} (the library writes it on every save)", log.string()));
  std::ifstream in(log);
  if (!in) throw CliError(exit_failed, fmt::format("cannot read {}", log.string()));

  std::vector<Record> saves, restores;
  std::size_t malformed = 0, lines = 0, first_bad_line = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++lines;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = parse_record(line);
    if (!r) {
      // A run killed in the middle of appending leaves a partial last line.
      if (!malformed) first_bad_line = lines;
      ++malformed;
      continue;
    }
    std::string ev = str(*r, "event");
    if (ev == "save")
      saves.push_back(*r);
    else if (ev == "restore")
      restores.push_back(*r);
  }

  Series blocked, durable, gbps, bytes, iter, ratio;
  std::map<std::string, std::size_t> modes;
  std::map<long, std::size_t> rank_counts;
  double compute_seconds = 0, compute_blocked = 0, total_bytes = 0;
  std::int64_t first_step = -1, last_step = -1;
  for (const auto &r : saves) {
    auto step = static_cast<std::int64_t>(num(r, "step").value_or(-1));
    if (first_step < 0 || step < first_step) first_step = step;
    last_step = std::max(last_step, step);
    auto b = num(r, "blocked_seconds");
    auto d = num(r, "durable_seconds");
    auto by = num(r, "bytes");
    if (b) blocked.add(*b, step);
    if (d) durable.add(*d, step);
    if (by) {
      bytes.add(*by, step);
      total_bytes += *by;
    }
    if (auto g = num(r, "gbps"))
      gbps.add(*g, step);
    else if (by && d && *d > 0)
      gbps.add(*by / *d / 1e9, step);
    if (auto m = str(r, "mode"); !m.empty()) ++modes[m];
    if (auto n = num(r, "nranks")) ++rank_counts[static_cast<long>(*n)];
    auto it = num(r, "iteration_seconds");
    auto its = num(r, "iterations");
    if (it && its && *its > 0) {
      iter.add(*it, step);
      compute_seconds += *it * *its;
      if (b) {
        compute_blocked += *b;
        if (*it > 0) ratio.add((*it + *b) / *it, step);
      }
    }
  }

  std::optional<double> overhead;
  if (compute_seconds > 0) overhead = compute_blocked / compute_seconds;

  if (vm.count("json")) {
    auto series = [](const Series &x) {
      if (!x.n) return nlohmann::ordered_json();
      return nlohmann::ordered_json{{"n", x.n},     {"mean", x.mean()},         {"min", x.min},
                                    {"max", x.max}, {"max_step", x.max_step}, {"total", x.sum}};
    };
    nlohmann::ordered_json j = {{"log", log.string()},
                                {"saves", saves.size()},
                                {"restores", restores.size()},
                                {"malformed_lines", malformed},
                                {"first_step", first_step},
                                {"last_step", last_step},
                                {"total_bytes", static_cast<std::uint64_t>(std::llround(total_bytes))},
                                {"bytes", series(bytes)},
                                {"blocked_seconds", series(blocked)},
                                {"durable_seconds", series(durable)},
                                {"gbps", series(gbps)},
                                {"iteration_seconds", series(iter)},
                                {"checkpoint_iteration_ratio", series(ratio)},
                                {"compute_seconds", compute_seconds},
                                {"overhead", overhead ? nlohmann::ordered_json(*overhead) : nlohmann::ordered_json()},
                                {"modes", modes}};
    std::cout << json_dump(j) << "\n";
  } else {
    std::cout << fmt::format("statistics of {} ({} saves, {} restores)\n", log.string(), saves.size(), restores.size());
    if (malformed)
      std::cout << fmt::format("note: skipped {} malformed line(s), the first at line {}\n", malformed, first_bad_line);
    if (saves.empty()) {
      std::cout << "no saves recorded\n";
    } else {
      std::string mode_text, ranks_text;
      for (const auto &[m, n] : modes) mode_text += fmt::format("{}{} {}", mode_text.empty() ? "" : ", ", n, m);
      for (const auto &[r, n] : rank_counts) ranks_text += fmt::format("{}{}", ranks_text.empty() ? "" : ", ", r);
      std::cout << fmt::format("saves:            {} at steps {}..{}{}{}\n", saves.size(), first_step, last_step,
                               mode_text.empty() ? "" : " (" + mode_text + ")",
                               ranks_text.empty() ? "" : ", ranks " + ranks_text);
      if (bytes.n)
        std::cout << fmt::format("size:             {} per save (mean), {} in total\n",
                                 human_bytes(static_cast<std::uint64_t>(bytes.mean())),
                                 human_bytes(static_cast<std::uint64_t>(total_bytes)));
      if (blocked.n)
        std::cout << fmt::format("blocked in save:  mean {}, max {} (step {}), total {}\n", seconds_text(blocked.mean()),
                                 seconds_text(blocked.max), blocked.max_step, seconds_text(blocked.sum));
      if (durable.n)
        std::cout << fmt::format("until durable:    mean {}, max {} (step {})\n", seconds_text(durable.mean()),
                                 seconds_text(durable.max), durable.max_step);
      if (gbps.n)
        std::cout << fmt::format("bandwidth:        mean {}, min {}, max {} (bytes / seconds until durable)\n",
                                 rate_text(gbps.mean()), rate_text(gbps.min), rate_text(gbps.max));
      if (iter.n) {
        std::cout << fmt::format("iteration time:   mean {} (over {} save intervals)\n", seconds_text(iter.mean()),
                                 iter.n);
        std::cout << fmt::format("overhead:         {:.2f}% (time blocked in save / time computing {})\n",
                                 *overhead * 100, seconds_text(compute_seconds));
        if (ratio.n)
          std::cout << fmt::format("checkpointing iteration: {:.2f}x a normal one (mean; max {:.2f}x at step {})\n",
                                   ratio.mean(), ratio.max, ratio.max_step);
      } else {
        std::cout << "overhead:         unknown (no iteration times recorded: the app does not use the loop helper)\n";
      }
    }
    for (const auto &r : restores)
      std::cout << fmt::format("restore:          step {} on {} ranks from {}\n",
                               static_cast<std::int64_t>(num(r, "step").value_or(-1)),
                               static_cast<long>(num(r, "nranks").value_or(0)), str(r, "file"));
  }

  if (vm.count("plot")) {
    fs::path png = vm["plot"].as<std::string>();
    if (saves.empty()) throw CliError(exit_failed, "nothing to plot: no saves recorded");
    int rc = run_plot(log, png);
    if (rc != 0) throw CliError(exit_failed, fmt::format("plotting failed (the plot script exited with {})", rc));
    if (!vm.count("json")) std::cout << fmt::format("wrote {}\n", png.string());
  }
  return exit_ok;
}

} // namespace ckpt::cli
