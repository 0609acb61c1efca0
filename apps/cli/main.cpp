// ckpt: inspect, verify, compare, prune, export and measure the checkpoints of a run.

#include "commands.hpp"
#include "common.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>

namespace po = boost::program_options;

namespace ckpt::cli {

bool parse_args(const std::string &name, const std::string &usage, const std::string &summary,
                const Args &args, po::options_description &options,
                const po::positional_options_description &positional, po::variables_map &vm) {
  options.add_options()
      ("progress", "show progress on stderr even when it is not a terminal")
      ("no-progress", "never show progress")
      ("help,h", "show this help");
  // Parse --help first, so that `ckpt CMD --help` works without the required arguments.
  for (const auto &a : args)
    if (a == "--help" || a == "-h") {
      std::cout << "usage: ckpt " << name << " " << usage << "\n\n" << summary << "\n\n" << options;
      return false;
    }
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  po::notify(vm);
  return true;
}

bool want_progress(const po::variables_map &vm) {
  if (vm.count("no-progress")) return false;
  if (vm.count("progress")) return true;
  return stderr_is_tty();
}

std::string json_dump(const nlohmann::ordered_json &j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace ckpt::cli

namespace {

struct Command {
  const char *name;
  int (*run)(const ckpt::cli::Args &);
  const char *summary;
};

const Command commands[] = {
    {"list", ckpt::cli::cmd_list, "list the checkpoints of a directory (step, time, size, ranks, valid)"},
    {"info", ckpt::cli::cmd_info, "show the fields, shapes, dtypes and attributes of a checkpoint"},
    {"verify", ckpt::cli::cmd_verify, "check every block's checksum; exit 0 only when valid"},
    {"diff", ckpt::cli::cmd_diff, "compare two checkpoints field by field (max abs difference)"},
    {"prune", ckpt::cli::cmd_prune, "delete old checkpoints, keeping the newest N and the newest valid one"},
    {"export", ckpt::cli::cmd_export, "write a field as .npy, HDF5 and XDMF (for ParaView/VisIt)"},
    {"stats", ckpt::cli::cmd_stats, "summarise the checkpoint costs of a run; --plot draws them"},
};

void print_usage(std::FILE *out) {
  std::fprintf(out,
               "usage: ckpt <command> [options] [arguments]\n"
               "       ckpt <command> --help\n"
               "       ckpt --version\n\n"
               "Inspect and manage the checkpoints written by the ckpt library.\n\n"
               "commands:\n");
  for (const auto &c : commands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\nexit status: 0 success; 1 a checkpoint is invalid, checkpoints differ or the\n"
               "operation failed; 2 bad arguments, a missing directory or a file that is not a\n"
               "ckpt checkpoint.\n");
}

} // namespace

int main(int argc, char **argv) {
  using namespace ckpt::cli;
  if (argc < 2) {
    print_usage(stderr);
    return exit_usage;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    if (name == "help" && argc > 2) {
      for (const auto &c : commands)
        if (c.name == std::string(argv[2])) return c.run({"--help"});
      std::fprintf(stderr, "ckpt: unknown command '%s'\n", argv[2]);
      return exit_usage;
    }
    print_usage(stdout);
    return exit_ok;
  }
  if (name == "--version" || name == "-V") {
    std::printf("ckpt %s (library %s)\n", CKPT_CLI_VERSION, ckpt::library_version());
    return exit_ok;
  }
  const Command *cmd = nullptr;
  for (const auto &c : commands)
    if (name == c.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "ckpt: unknown command '%s'\n\n", name.c_str());
    print_usage(stderr);
    return exit_usage;
  }
  Args args(argv + 2, argv + argc);
  try {
    return cmd->run(args);
  } catch (const po::error &e) {
    std::fprintf(stderr, "ckpt %s: %s\nTry 'ckpt %s --help'.\n", cmd->name, e.what(), cmd->name);
    return exit_usage;
  } catch (const CliError &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt %s: %s\n", cmd->name, e.what());
    return e.exit_code();
  } catch (const ckpt::Error &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt %s: %s\n", cmd->name, e.what());
    return exit_failed;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt %s: %s\n", cmd->name, e.what());
    return exit_failed;
  }
}
