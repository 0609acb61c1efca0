// ckpt list, info, verify and prune.

#include "commands.hpp"
#include "common.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

std::uint64_t file_size_or_zero(const fs::path &p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

std::optional<std::int64_t> optional_step(const po::variables_map &vm) {
  if (!vm.count("step")) return std::nullopt;
  return parse_step(vm["step"].as<std::string>());
}

} // namespace

// ---------------------------------------------------------------------------------- list

int cmd_list(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("dir", po::value<std::string>()->required(), "checkpoint directory")
      ("no-verify", "do not read the data to check checksums (only the metadata)")
      ("json", "print one JSON object per checkpoint instead of a table");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_args("list", "DIR [--no-verify] [--json]",
                  "Lists the committed checkpoints in DIR, newest first: step, simulation time,\n"
                  "rank count, file size, creation time, and whether every checksum is valid.\n"
                  "Temporary files of unfinished saves are never listed.",
                  args, opts, pos, vm))
    return exit_ok;
  fs::path dir = vm["dir"].as<std::string>();
  bool check = !vm.count("no-verify");
  bool json = vm.count("json") > 0;
  auto entries = checkpoints_in(dir);
  if (entries.empty()) {
    if (!json) std::cout << fmt::format("no checkpoints in {}\n", dir.string());
    return exit_ok;
  }
  std::uint64_t total = 0;
  for (const auto &e : entries) total += file_size_or_zero(e.path);
  Progress progress(check && want_progress(vm), "verifying", total);
  if (!json)
    std::cout << fmt::format("{:>12}  {:>12}  {:>5}  {:>10}  {:<20}  {}\n", "STEP", "TIME", "RANKS", "SIZE",
                             "CREATED", "STATUS");
  auto latest = read_latest(dir);
  for (const auto &e : entries) {
    std::uint64_t size = file_size_or_zero(e.path);
    std::string status, reason;
    bool readable = true;
    CheckpointInfo info;
    try {
      info = inspect(e.path);
    } catch (const Error &err) {
      readable = false;
      status = "unreadable";
      reason = err.detail();
    }
    if (readable) {
      if (check) {
        auto rep = verify(e.path);
        status = rep.ok ? "valid" : "corrupt";
        reason = rep.reason;
      } else {
        status = "unchecked";
      }
    }
    progress.advance(size);
    if (json) {
      nlohmann::ordered_json j = {{"step", e.step}, {"file", e.path.filename().string()}, {"bytes", size},
                                  {"status", status}};
      if (readable) {
        j["time"] = info.time;
        j["nranks"] = info.nranks;
        j["created"] = info.created;
        j["fields"] = info.fields.size();
      }
      if (!reason.empty()) j["reason"] = reason;
      std::cout << json_dump(j) << "\n";
    } else {
      std::string shown = status + (reason.empty() ? "" : ": " + reason);
      if (latest && *latest == e.step) shown += " (LATEST)";
      if (readable)
        std::cout << fmt::format("{:>12}  {:>12}  {:>5}  {:>10}  {:<20}  {}\n", e.step, number_text(info.time),
                                 info.nranks, human_bytes(size), info.created, shown);
      else
        std::cout << fmt::format("{:>12}  {:>12}  {:>5}  {:>10}  {:<20}  {}\n", e.step, "-", "-",
                                 human_bytes(size), "-", shown);
    }
  }
  progress.finish();
  return exit_ok;
}

// ---------------------------------------------------------------------------------- info

int cmd_info(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("where", po::value<std::string>()->required(), "checkpoint directory or checkpoint file")
      ("step", po::value<std::string>(), "step (default: the newest checkpoint)")
      ("blocks", "also list every field's blocks (rank, offset, count, checksum)")
      ("json", "print a JSON document instead of text");
  po::positional_options_description pos;
  pos.add("where", 1).add("step", 1);
  po::variables_map vm;
  if (!parse_args("info", "DIR [STEP] | FILE [--blocks] [--json]",
                  "Shows what a checkpoint holds: its root attributes (format version, library\n"
                  "version, step, time, rank count, creation time, checksum algorithm), the user\n"
                  "metadata, and every field with its kind, dtype and dataset shape. Reads no\n"
                  "field data; use `ckpt verify` to check the data.",
                  args, opts, pos, vm))
    return exit_ok;
  fs::path file = resolve_checkpoint(vm["where"].as<std::string>(), optional_step(vm));
  CheckpointInfo info = inspect_or_fail(file);
  bool blocks = vm.count("blocks") > 0;
  if (vm.count("json")) {
    nlohmann::ordered_json j = {{"file", file.string()},
                                {"file_bytes", info.file_bytes},
                                {"format", info.format},
                                {"format_version", fmt::format("{}.{}", info.format_major, info.format_minor)},
                                {"library_version", info.library_version},
                                {"step", info.step},
                                {"time", info.time},
                                {"nranks", info.nranks},
                                {"created", info.created},
                                {"checksum_algorithm", info.checksum_algorithm},
                                {"metadata", nlohmann::ordered_json::object()},
                                {"fields", nlohmann::ordered_json::array()}};
    for (const auto &[k, v] : info.metadata) j["metadata"][k] = v;
    for (const auto &f : info.fields) {
      nlohmann::ordered_json fj = {{"name", f.name},
                                   {"kind", kind_name(f.kind)},
                                   {"dtype", dtype_name(f.dtype)},
                                   {"shape", f.shape},
                                   {"nblocks", f.blocks.size()}};
      if (blocks) {
        fj["blocks"] = nlohmann::ordered_json::array();
        for (const auto &bl : f.blocks)
          fj["blocks"].push_back({{"rank", bl.rank},
                                  {"offset", bl.offset},
                                  {"count", bl.count},
                                  {"local_shape", bl.local_shape},
                                  {"checksum", fmt::format("{:016x}", bl.checksum)}});
      }
      j["fields"].push_back(std::move(fj));
    }
    std::cout << json_dump(j) << "\n";
    return exit_ok;
  }
  std::cout << fmt::format("file:       {} ({})\n", file.string(), human_bytes(info.file_bytes));
  std::cout << fmt::format("format:     {} {}.{} (written by ckpt {})\n", info.format, info.format_major,
                           info.format_minor, info.library_version);
  std::cout << fmt::format("step:       {}\n", info.step);
  std::cout << fmt::format("time:       {}\n", number_text(info.time));
  std::cout << fmt::format("ranks:      {}\n", info.nranks);
  std::cout << fmt::format("created:    {}\n", info.created);
  std::cout << fmt::format("checksums:  {}\n", info.checksum_algorithm);
  if (!info.metadata.empty()) {
    std::cout << "metadata:\n";
    // Long values (the Python package stores its state tree as JSON) are cut; --json has them.
    for (const auto &[k, v] : info.metadata) {
      if (v.size() > 100)
        std::cout << fmt::format("  {} = {}... ({} characters; --json shows all)\n", k, v.substr(0, 80), v.size());
      else
        std::cout << fmt::format("  {} = {}\n", k, v);
    }
  }
  std::cout << fmt::format("fields ({}):\n", info.fields.size());
  std::size_t w = 4;
  for (const auto &f : info.fields) w = std::max(w, f.name.size());
  std::cout << fmt::format("  {:<{}}  {:<11}  {:<7}  {:<20}  {:>6}  {:>10}\n", "NAME", w, "KIND", "DTYPE", "SHAPE",
                           "BLOCKS", "BYTES");
  for (const auto &f : info.fields) {
    std::uint64_t bytes = volume(f.shape) * dtype_size(f.dtype);
    std::cout << fmt::format("  {:<{}}  {:<11}  {:<7}  {:<20}  {:>6}  {:>10}\n", f.name, w, kind_name(f.kind),
                             dtype_name(f.dtype), shape_text(f.shape), f.blocks.size(), human_bytes(bytes));
    if (blocks)
      for (std::size_t b = 0; b < f.blocks.size(); ++b) {
        const auto &bl = f.blocks[b];
        std::cout << fmt::format("      block {:<4} rank {:<5} offset {:<14} count {:<14} local {:<14} checksum {:016x}\n",
                                 b, bl.rank, shape_text(bl.offset), shape_text(bl.count), shape_text(bl.local_shape),
                                 bl.checksum);
      }
  }
  return exit_ok;
}

// -------------------------------------------------------------------------------- verify

int cmd_verify(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("where", po::value<std::string>()->required(), "checkpoint directory or checkpoint file")
      ("step", po::value<std::string>(), "verify only this step (default: every checkpoint in DIR)")
      ("latest", "verify only the newest checkpoint in DIR");
  po::positional_options_description pos;
  pos.add("where", 1).add("step", 1);
  po::variables_map vm;
  if (!parse_args("verify", "DIR [STEP] | FILE [--latest]",
                  "Reads every block of every field and checks its checksum against the block\n"
                  "table written at save time. With DIR alone, checks every checkpoint in it.\n"
                  "FILE may also be a node-local part (*.part, written with CKPT_LOCAL_DIR): its\n"
                  "trailer and the checksum of every byte range it holds are checked.\n"
                  "Exit status 0 when every checked checkpoint is valid; 1 when one is not, with\n"
                  "the reason (which field and block) on stdout and stderr.",
                  args, opts, pos, vm))
    return exit_ok;
  fs::path where = vm["where"].as<std::string>();
  auto step = optional_step(vm);
  std::vector<fs::path> files;
  std::error_code ec;
  if (step || vm.count("latest") || !fs::is_directory(where, ec)) {
    files.push_back(resolve_checkpoint(where, step));
  } else {
    for (const auto &e : checkpoints_in(where)) files.push_back(e.path);
    if (files.empty()) throw CliError(exit_failed, fmt::format("no checkpoints (ckpt-<step>.h5) in {}", where.string()));
  }
  std::uint64_t total = 0;
  for (const auto &f : files) total += file_size_or_zero(f);
  Progress progress(want_progress(vm), "verifying", total);
  std::size_t bad = 0;
  std::string first_valid;
  for (const auto &f : files) {
    auto rep = verify(f);
    progress.advance(file_size_or_zero(f));
    if (rep.ok) {
      if (first_valid.empty()) first_valid = f.filename().string();
      if (!rep.part.empty())
        std::cout << fmt::format("{}: ok ({}: {} byte ranges, {} checked)\n", f.string(), rep.part,
                                 rep.blocks_checked, human_bytes(rep.bytes_checked));
      else
        std::cout << fmt::format("{}: ok ({} blocks, {} checked)\n", f.string(), rep.blocks_checked,
                                 human_bytes(rep.bytes_checked));
    } else {
      ++bad;
      std::cout << fmt::format("{}: INVALID: {}\n", f.string(), rep.reason);
      std::cerr << fmt::format("ckpt verify: {}: {}\n", f.string(), rep.reason);
    }
  }
  progress.finish();
  if (files.size() > 1) {
    std::cout << fmt::format("{} of {} checkpoints valid", files.size() - bad, files.size());
    if (!first_valid.empty() && bad) std::cout << fmt::format("; restore would use {}", first_valid);
    std::cout << "\n";
  }
  return bad ? exit_failed : exit_ok;
}

// --------------------------------------------------------------------------------- prune

int cmd_prune(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("dir", po::value<std::string>()->required(), "checkpoint directory")
      ("keep", po::value<int>()->required(), "number of newest checkpoints to keep (at least 1)")
      ("dry-run,n", "only say what would be deleted");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_args("prune", "DIR --keep N [--dry-run]",
                  "Deletes all but the newest N checkpoints in DIR. The newest checkpoint that\n"
                  "verifies is always kept, even when it is older than the newest N (so a run can\n"
                  "always restart); when no checkpoint verifies, nothing is deleted. The directory\n"
                  "is fsync'd after deleting. Safe while a run writes to DIR: unfinished saves are\n"
                  "temporary files that prune never touches.",
                  args, opts, pos, vm))
    return exit_ok;
  fs::path dir = vm["dir"].as<std::string>();
  int keep = vm["keep"].as<int>();
  if (keep < 1) throw CliError(exit_usage, fmt::format("--keep must be at least 1 (got {})", keep));
  bool dry = vm.count("dry-run") > 0;
  auto entries = checkpoints_in(dir);
  if (entries.empty()) {
    std::cout << fmt::format("no checkpoints in {}; nothing to do\n", dir.string());
    return exit_ok;
  }
  // Find the newest valid checkpoint, verifying from the newest down.
  std::uint64_t total = 0;
  for (const auto &e : entries) total += file_size_or_zero(e.path);
  Progress progress(want_progress(vm), "finding the newest valid checkpoint", total);
  std::optional<std::size_t> newest_valid;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto rep = verify(entries[i].path);
    progress.advance(file_size_or_zero(entries[i].path));
    if (rep.ok) {
      newest_valid = i;
      break;
    }
    std::cout << fmt::format("note: {} is invalid: {}\n", entries[i].path.filename().string(), rep.reason);
  }
  progress.finish();
  if (!newest_valid)
    throw CliError(exit_failed, fmt::format("no checkpoint in {} verifies; deleting nothing", dir.string()));
  std::set<std::size_t> kept;
  for (std::size_t i = 0; i < entries.size() && i < static_cast<std::size_t>(keep); ++i) kept.insert(i);
  if (!kept.count(*newest_valid)) {
    kept.insert(*newest_valid);
    std::cout << fmt::format("keeping {} as well: it is the newest valid checkpoint\n",
                             entries[*newest_valid].path.filename().string());
  }
  std::size_t deleted = 0;
  std::uint64_t freed = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (kept.count(i)) continue;
    std::uint64_t size = file_size_or_zero(entries[i].path);
    if (dry) {
      std::cout << fmt::format("would delete {} ({})\n", entries[i].path.filename().string(), human_bytes(size));
    } else {
      std::error_code ec;
      fs::remove(entries[i].path, ec);
      if (ec)
        throw CliError(exit_failed, fmt::format("cannot delete {}: {}", entries[i].path.string(), ec.message()));
      std::cout << fmt::format("deleted {} ({})\n", entries[i].path.filename().string(), human_bytes(size));
    }
    ++deleted;
    freed += size;
  }
  if (!dry && deleted) {
    // Make the deletions durable, like the library's own retention.
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0 || ::fsync(fd) != 0) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      throw CliError(exit_failed, fmt::format("fsync of directory {} failed: {}", dir.string(), std::strerror(err)));
    }
    ::close(fd);
  }
  std::string kept_steps;
  for (auto i : kept) {
    if (!kept_steps.empty()) kept_steps += ", ";
    kept_steps += std::to_string(entries[i].step);
  }
  std::cout << fmt::format("{} {} checkpoint(s), {}; kept step(s) {}\n", dry ? "would delete" : "deleted", deleted,
                           human_bytes(freed), kept_steps);
  return exit_ok;
}

} // namespace ckpt::cli
