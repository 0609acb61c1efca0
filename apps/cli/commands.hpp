#pragma once
// The subcommands of `ckpt`. Each parses its own arguments (with --help), prints to
// stdout, reports problems by throwing CliError, and returns its exit code.

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ckpt::cli {

using Args = std::vector<std::string>;

int cmd_list(const Args &args);
int cmd_info(const Args &args);
int cmd_verify(const Args &args);
int cmd_prune(const Args &args);
int cmd_diff(const Args &args);
int cmd_export(const Args &args);
int cmd_stats(const Args &args);

/// Parses `args` for subcommand `name`. Adds --help and --progress/--no-progress to
/// `options`. Returns false after printing the help text (the caller then returns 0).
/// \throws boost::program_options::error for bad arguments.
bool parse_args(const std::string &name, const std::string &usage, const std::string &summary,
                const Args &args, boost::program_options::options_description &options,
                const boost::program_options::positional_options_description &positional,
                boost::program_options::variables_map &vm);

/// Whether to show progress: --progress/--no-progress, else when stderr is a terminal.
bool want_progress(const boost::program_options::variables_map &vm);

/// A JSON document as one line (what every `--json` prints); bytes that are not UTF-8
/// (file names may hold any) are replaced, not refused.
std::string json_dump(const nlohmann::ordered_json &j);

} // namespace ckpt::cli
