#pragma once
// Commit stage of a save, on rank 0 once every rank's data is durable: the temp file is
// fsynced, renamed into place, the directory fsynced (the two fsyncs of a commit), LATEST
// moved, and old checkpoints pruned (commit_written: a small save's variant that may rename
// before the fsync). Plain POSIX calls, no MPI: unit-tested in
// tests/unit/test_local.cpp. Also the test hooks (CKPT_TEST_FAULT) that inject failures
// along the save path.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::detail {

class Worker; // async_writer.hpp

/// fsync of a file or (directory = true) a directory. Throws Error(io), or Error(no_space)
/// for ENOSPC/EDQUOT, naming the path.
void fsync_path(const std::string &path, bool directory);

/// Makes `tmp` the committed checkpoint `dir/final_name`: rename, directory fsync, then
/// LATEST (rewritten in place when it is a plain file with one link, else written to a temp
/// file and renamed over it; not fsynced: it is a hint). The
/// temp file's data must already be durable. Throws Error(io) naming what failed; the
/// checkpoint is committed once the rename is durable, whatever happens to LATEST.
void publish(const std::filesystem::path &dir, const std::filesystem::path &tmp, const std::string &final_name);

/// Retention: keeps the newest `keep` checkpoints of steps up to `up_to_step` and deletes the
/// older ones; checkpoints of later steps (another timeline) are left alone. Returns what
/// could not be deleted, as warnings (pruning never fails a save).
/// With `deferred`, each checkpoint to delete is opened before it is unlinked, and the open
/// descriptor appended to *deferred for the caller to close later, off the save's path: the
/// unlink then only removes the name (~0.03 ms), and the file system frees the blocks at the
/// last close (2-3 ms for 16 MiB and 50-80 ms for 256 MiB on this machine's disk, mounted
/// with online discard). Nothing is left behind if the process dies first: its descriptors
/// are closed by the kernel.
std::vector<std::string> prune(const std::filesystem::path &dir, int keep, std::int64_t up_to_step,
                               std::vector<int> *deferred = nullptr);

/// Appends one line to `dir/ckpt-stats.jsonl` (best effort; a symlink there is not followed).
void append_stats_line(const std::filesystem::path &dir, const std::string &line);

/// `text` as a JSON string, quotes included: `"`, `\` and control characters escaped
/// (a file name in a stats line may hold any of them). Other bytes pass through.
std::string json_string(std::string_view text);

// Test hook for fault injection: CKPT_TEST_FAULT="<point>@<rank>[:kill]" makes `rank` (or
// every rank for "*") fail with Errc::io, or die by SIGKILL, at that point of a save.
// Points: write (before the data), fsync (after the data), rename, latest, prune.
enum class Fault { none, fail, kill };
/// The fault planned for `point` on `rank` (reads the environment: call it on the
/// application thread, never from the background writer).
Fault fault_action(const char *point, int rank);
/// Acts on a fault decided earlier by fault_action.
void fault_apply(Fault f, const char *point, int rank);
/// fault_apply(fault_action(point, rank), point, rank).
void fault_point(const char *point, int rank);

/// Rank 0's commit of a small checkpoint it has written to `tmp` through `fd` (still open;
/// the caller closes it): makes it durable as `dir/final_name`, then moves LATEST as
/// `publish` does. In the usual order (fsync, rename, directory fsync) a crash at any point
/// leaves either the complete file or none under the final name. With `rename_first`, the
/// rename comes before the fsync, whose journal commit then carries the rename too, so the
/// directory fsync that follows only flushes the device cache (on ext4 here ~0.055 ms less
/// per save: 1.15-1.31x a pickle's fsync + rename instead of 1.23-1.46x). With
/// `rename_first` and a `dir_syncer`, the directory's fsync runs on that thread while this
/// one fsyncs the file: both wait for the same journal commit, and the pair costs what the
/// file's fsync alone costs (0.275 against 0.265 ms for write + fsync + rename, where one
/// after the other took 0.335 ms; C program, ext4 here). Both are done before it returns.
/// An operating-system crash between the rename and the fsyncs can leave a torn file under
/// the final name; restore finds it damaged (its checksums, or no HDF5 superblock), sets it
/// aside and restores the checkpoint before it. So `rename_first` is only for a directory
/// that already holds a durable checkpoint of this run. `f_fsync` fires after the file's
/// fsync. A failure removes the file under whichever name it has and throws.
void commit_written(const std::filesystem::path &dir, int fd, const std::filesystem::path &tmp,
                    const std::string &final_name, bool rename_first, Fault f_fsync,
                    Worker *dir_syncer = nullptr);

} // namespace ckpt::detail
